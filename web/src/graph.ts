// The live service graph (cytoscape): namespaces as compound nodes, edges styled by
// status and mTLS. Labels are plain text (cytoscape renders them on canvas).
import cytoscape, { Core, ElementDefinition } from 'cytoscape';
import { api, EdgeDetail, GraphEdge, GraphNode, ServiceDetail } from './api';
import { clear, el, fmtNum, fmtTime, hashLink, kv, pct } from './dom';

export interface GraphData { nodes: GraphNode[]; edges: GraphEdge[] }

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export function elements(data: GraphData): ElementDefinition[] {
  const namespaces = new Set(data.nodes.map((n) => n.namespace));
  const out: ElementDefinition[] = [];
  for (const ns of namespaces) out.push({ data: { id: `ns:${ns}`, label: ns }, classes: 'namespace' });
  for (const n of data.nodes) out.push({ data: { id: n.id, label: n.service, parent: `ns:${n.namespace}` }, classes: 'service' });
  const ids = new Set(data.nodes.map((n) => n.id));
  for (const e of data.edges) {
    if (!ids.has(e.source) || !ids.has(e.destination)) continue;
    const plaintext = e.mtls_ratio !== null && e.mtls_ratio < 1;
    out.push({
      data: { id: `e:${e.source}\u0000${e.destination}`, source: e.source, target: e.destination, calls: e.calls },
      classes: `${e.status}${plaintext ? ' plaintext' : ''}`,
    });
  }
  return out;
}

export function makeCy(container: HTMLElement, elems: ElementDefinition[]): Core {
  const cy = cytoscape({
    container, elements: elems,
    style: [
      { selector: 'node.service', style: { label: 'data(label)', 'background-color': cssVar('--node'), color: cssVar('--fg'), 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 3, width: 22, height: 22 } },
      { selector: 'node.namespace', style: { label: 'data(label)', 'background-color': cssVar('--ns'), 'background-opacity': 0.35, 'border-color': cssVar('--muted'), 'border-width': 1, color: cssVar('--muted'), 'text-valign': 'top', 'font-size': 12, shape: 'round-rectangle' } },
      { selector: 'edge', style: { width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'line-color': cssVar('--edge'), 'target-arrow-color': cssVar('--edge') } },
      { selector: 'edge.new', style: { 'line-color': cssVar('--warn'), 'target-arrow-color': cssVar('--warn'), width: 3 } },
      { selector: 'edge.alerted', style: { 'line-color': cssVar('--bad'), 'target-arrow-color': cssVar('--bad'), width: 4 } },
      { selector: 'edge.plaintext', style: { 'line-style': 'dashed' } },
      { selector: '.faded', style: { opacity: 0.25 } },
      { selector: 'node.blast', style: { 'background-color': cssVar('--warn'), 'border-width': 3, 'border-color': cssVar('--bad') } },
      { selector: 'node.path', style: { 'background-color': cssVar('--bad'), 'border-width': 3, 'border-color': cssVar('--fg') } },
      { selector: 'edge.path', style: { 'line-color': cssVar('--bad'), 'target-arrow-color': cssVar('--bad'), width: 6 } },
      { selector: ':selected', style: { 'border-width': 3, 'border-color': cssVar('--accent') } },
    ],
    layout: { name: 'cose', animate: false, padding: 30, nodeDimensionsIncludeLabels: true },
  });
  (window as unknown as { __cy: Core }).__cy = cy;
  return cy;
}

export async function renderGraph(root: HTMLElement): Promise<() => void> {
  const canvas = el('div', { id: 'cy', class: 'cy' });
  const panel = el('aside', { id: 'detail', class: 'detail' }, el('p', { class: 'muted' }, 'Click a service or an edge.'));
  const legend = el('div', { class: 'legend' },
    el('span', { class: 'sw baseline' }, 'baseline'), el('span', { class: 'sw new' }, 'new'),
    el('span', { class: 'sw alerted' }, 'alerted'), el('span', { class: 'sw dashed' }, 'plaintext (dashed)'));
  root.append(el('section', { class: 'graph-view' }, el('div', { class: 'graph-wrap' }, legend, canvas), panel));

  let data = await api<GraphData>('/api/v1/graph');
  let signature = '';
  let cy: Core | null = null;
  const draw = (next: GraphData) => {
    const elems = elements(next);
    const sig = elems.map((e) => `${e.data.id}|${e.classes}`).sort().join('\n');
    if (sig === signature && cy) return;
    signature = sig;
    if (!cy) {
      cy = makeCy(canvas, elems);
      cy.on('tap', 'node.service', (evt) => void showService(panel, cy!, evt.target.id()));
      cy.on('tap', 'edge', (evt) => void showEdge(panel, evt.target.data('source'), evt.target.data('target')));
    } else {
      cy.json({ elements: elems });
      cy.layout({ name: 'cose', animate: false, padding: 30 }).run();
    }
    canvas.dataset.nodes = String(next.nodes.length);
  };
  draw(data);
  const timer = window.setInterval(async () => {
    try { data = await api<GraphData>('/api/v1/graph'); draw(data); } catch { /* keep last graph */ }
  }, 3000);
  return () => { window.clearInterval(timer); cy?.destroy(); };
}

async function showEdge(panel: HTMLElement, source: string, destination: string): Promise<void> {
  clear(panel);
  const q = `source=${encodeURIComponent(source)}&destination=${encodeURIComponent(destination)}`;
  let d: EdgeDetail;
  try { d = await api<EdgeDetail>(`/api/v1/graph/edge?${q}`); } catch (e) { panel.append(el('p', { class: 'error' }, String(e))); return; }
  panel.append(
    el('h3', {}, `${d.source} → ${d.destination}`),
    kv([['status', d.status], ['calls', fmtNum(d.calls)], ['errors', fmtNum(d.errors)],
      ['error ratio', d.calls > 0 ? pct(d.errors / d.calls) : '—'], ['mTLS ratio', pct(d.mtls_ratio)],
      ['first seen', fmtTime(d.first_seen)], ['last seen', fmtTime(d.last_seen)]]),
    el('h4', {}, 'Endpoints'),
    el('table', { class: 'list' }, el('tr', {}, el('th', {}, 'method'), el('th', {}, 'route'), el('th', {}, 'calls'), el('th', {}, 'errors'), el('th', {}, 'last seen')),
      ...d.endpoints.map((p) => el('tr', {}, el('td', {}, p.method), el('td', {}, p.route), el('td', {}, fmtNum(p.calls)), el('td', {}, fmtNum(p.errors)), el('td', {}, fmtTime(p.last_seen))))),
    el('h4', {}, 'Example traces'),
    el('ul', { class: 'mono' }, ...d.trace_ids.map((t) => el('li', {}, t))),
    el('h4', {}, 'Alerts'),
    el('ul', {}, ...d.alerts.map((a) => el('li', {}, hashLink(['alerts', a.id], `${a.severity} ${a.kind}: ${a.summary}`)))),
  );
}

async function showService(panel: HTMLElement, cy: Core, key: string): Promise<void> {
  clear(panel);
  let d: ServiceDetail;
  try { d = await api<ServiceDetail>(`/api/v1/graph/service/${encodeURIComponent(key)}`); } catch (e) { panel.append(el('p', { class: 'error' }, String(e))); return; }
  cy.elements().removeClass('blast faded');
  const radius = new Set(d.blast_radius);
  cy.nodes('.service').forEach((n) => { if (radius.has(n.id())) n.addClass('blast'); else if (n.id() !== key) n.addClass('faded'); });
  const edgeRow = (e: { source: string; destination: string; calls: number; status: string }, other: string) =>
    el('li', {}, `${other} (${fmtNum(e.calls)} calls, ${e.status})`);
  panel.append(
    el('h3', {}, d.service),
    el('h4', {}, `Calls (${d.calls.length})`), el('ul', {}, ...d.calls.map((e) => edgeRow(e, e.destination))),
    el('h4', {}, `Called by (${d.callers.length})`), el('ul', {}, ...d.callers.map((e) => edgeRow(e, e.source))),
    el('h4', {}, `Blast radius (${d.blast_radius.length})`),
    el('ul', { id: 'blast-radius' }, ...d.blast_radius.map((k) => el('li', {}, k))),
  );
}
