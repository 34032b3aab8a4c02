// The graph view. By default namespaces as nodes (edges added up, with counts and the
// worst status); a namespace opens into its services, a service into its k-hop
// neighbourhood. A search box jumps to a service; filters keep new/alerted edges (with
// one hop of context) or mTLS/plaintext ones. Big cuts are limited server-side to the
// services on alerted and new edges, then the busiest. Polls with the ETag of the last
// answer and updates the canvas in place.
import { getIfChanged, Graph, GraphEdge, GraphNode, api, NamespaceGraph } from '../api';
import { el } from '../dom';
import { GraphCanvas } from '../graph/canvas';
import { NS_PREFIX, namespaceDrawing, namespaceLabel, serviceDrawing } from '../graph/model';
import { showEdge, showNamespaceEdge, showService } from './graph-panel';
import { dataUrl, graphHash, GraphState, readState } from './graph-state';

const POLL_MS = 4000;
const SEARCH_RESULTS = 10;
const PROTOCOLS: NonNullable<GraphEdge['protocols']>[number][] = ['http', 'grpc', 'db', 'messaging', 'tcp'];

export async function renderGraph(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  const state = readState(params);
  const { url, level } = dataUrl(state);
  const container = el('div', { id: 'cy', class: 'cy' });
  const panel = el('aside', { id: 'detail', class: 'detail' }, el('p', { class: 'muted' },
    level === 'namespaces' ? 'Click a namespace to open it, an edge for its numbers.' : 'Click a service or an edge.'));
  const cut = el('p', { id: 'graph-cut', class: 'muted cut' });
  const view = el('section', { class: 'graph-view' },
    el('div', { class: 'graph-main' }, toolbar(state), cut,
      el('div', { class: 'graph-wrap' }, legend(), container)),
    el('div', { class: 'graph-side' }, panel));
  root.append(view);

  let nsGraph: NamespaceGraph | null = null;
  const canvas = new GraphCanvas(container, {
    node: (id, kind) => {
      if (kind === 'namespace') { location.hash = graphHash({ ...state, ns: id.slice(NS_PREFIX.length), focus: null }); return; }
      void showService(panel, id, (radius) => {
        canvas.clearMarks('blast', 'faded');
        const set = new Set(radius);
        canvas.cy.nodes().forEach((n) => { if (set.has(n.id())) canvas.mark(n.id(), 'blast'); });
      });
    },
    edge: (source, target) => {
      if (level === 'namespaces' && nsGraph) showNamespaceEdge(panel, nsGraph, source.slice(NS_PREFIX.length), target.slice(NS_PREFIX.length));
      else void showEdge(panel, source, target);
    },
  });
  panel.after(canvas.index);

  let etag: string | null = null;
  const refresh = async () => {
    const answer = await getIfChanged<Graph | NamespaceGraph>(url, etag);
    if (!answer) return;
    etag = answer.etag;
    if (level === 'namespaces') {
      nsGraph = answer.value as NamespaceGraph;
      canvas.update(namespaceDrawing(nsGraph));
      cut.textContent = `${nsGraph.nodes.length} namespaces, ${nsGraph.nodes.reduce((a, n) => a + n.services, 0)} services. Open a namespace, or search for a service.`;
    } else {
      const g = answer.value as Graph;
      canvas.update(serviceDrawing(g));
      cut.textContent = g.matched_nodes > g.nodes.length
        ? `Showing ${g.nodes.length} of ${g.matched_nodes} services here (of ${g.total_nodes} in the mesh): those on alerted and new edges first, then the busiest. Search or focus to see the others.`
        : `${g.nodes.length} of ${g.total_nodes} services, ${g.edges.length} of ${g.total_edges} edges.`;
    }
    container.dataset.nodes = String(canvas.cy.nodes().length);
  };
  await refresh();
  if (state.focus) { canvas.mark(state.focus, 'focus'); canvas.center(state.focus); }
  const timer = window.setInterval(() => { refresh().catch(() => { /* keep the last picture */ }); }, POLL_MS);
  return () => { window.clearInterval(timer); canvas.destroy(); };
}

function toolbar(state: GraphState): HTMLElement {
  const crumbs = el('nav', { id: 'graph-crumbs', class: 'crumbs', 'aria-label': 'Graph level' },
    el('a', { href: graphHash({ changed: state.changed, mtls: state.mtls, protocol: state.protocol }) }, 'All namespaces'));
  if (state.ns !== null && state.ns !== undefined) crumbs.append(' › ', el('a', { href: graphHash({ ...state, focus: null }) }, namespaceLabel(state.ns)));
  if (state.focus) crumbs.append(' › ', el('strong', {}, `${state.focus} (${state.hops} hop${state.hops === 1 ? '' : 's'})`));

  const changed = el('input', { type: 'checkbox', id: 'f-changed' });
  changed.checked = !!state.changed;
  changed.addEventListener('change', () => { location.hash = graphHash({ ...state, changed: changed.checked }); });
  const mtls = el('select', { id: 'f-mtls', 'aria-label': 'mTLS' },
    el('option', { value: '' }, 'mTLS: any'), el('option', { value: 'mtls' }, 'mTLS only'), el('option', { value: 'plaintext' }, 'plaintext'));
  mtls.value = state.mtls ?? '';
  mtls.addEventListener('change', () => { location.hash = graphHash({ ...state, mtls: mtls.value || null }); });
  const protocol = el('select', { id: 'f-protocol', 'aria-label': 'protocol' },
    el('option', { value: '' }, 'protocol: any'), ...PROTOCOLS.map((p) => el('option', { value: p }, p)));
  protocol.value = state.protocol ?? '';
  protocol.addEventListener('change', () => { location.hash = graphHash({ ...state, protocol: protocol.value || null }); });
  const bar = el('div', { class: 'toolbar' }, crumbs, search(state),
    el('label', { class: 'check' }, changed, ' new / alerted only (+1 hop)'), mtls, protocol);
  if (state.focus) {
    const hops = el('select', { id: 'f-hops', 'aria-label': 'hops' }, ...[1, 2, 3].map((h) => el('option', { value: String(h) }, `${h} hop${h === 1 ? '' : 's'}`)));
    hops.value = String(state.hops ?? 1);
    hops.addEventListener('change', () => { location.hash = graphHash({ ...state, hops: Number(hops.value) }); });
    bar.append(hops);
  }
  return bar;
}

function search(state: GraphState): HTMLElement {
  const input = el('input', { type: 'search', id: 'graph-search', placeholder: 'Find a service…', autocomplete: 'off', 'aria-label': 'Find a service' });
  const results = el('ul', { id: 'search-results', class: 'search-results', role: 'listbox' });
  let hits: GraphNode[] = [];
  let pending = 0;
  const go = (key: string) => { location.hash = graphHash({ ...state, ns: null, focus: key, hops: state.hops ?? 1 }); };
  const find = async (): Promise<GraphNode[]> => {
    const q = input.value.trim();
    if (!q) { results.replaceChildren(); return (hits = []); }
    try {
      hits = (await api<{ services: GraphNode[] }>(`/api/v1/graph/search?${new URLSearchParams({ q, limit: String(SEARCH_RESULTS) })}`)).services;
    } catch { hits = []; }
    results.replaceChildren(...(hits.length ? hits.map((n) => {
      const b = el('button', { type: 'button', role: 'option' }, n.id);
      b.addEventListener('click', () => go(n.id));
      return el('li', {}, b);
    }) : [el('li', { class: 'muted' }, 'no service matches')]));
    return hits;
  };
  input.addEventListener('input', () => {
    window.clearTimeout(pending);
    pending = window.setTimeout(() => void find(), 150);
  });
  // Enter goes to the best match of what is typed now, not of the last finished search.
  input.addEventListener('keydown', async (e) => {
    if (e.key !== 'Enter') return;
    window.clearTimeout(pending);
    const best = (await find())[0];
    if (best) go(best.id);
  });
  return el('div', { class: 'search' }, input, results);
}

function legend(): HTMLElement {
  return el('div', { class: 'legend' },
    el('span', { class: 'sw baseline' }, 'baseline'), el('span', { class: 'sw new' }, 'new'),
    el('span', { class: 'sw alerted' }, 'alerted'), el('span', { class: 'sw dashed' }, 'plaintext'));
}
