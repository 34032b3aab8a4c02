// The neighbourhood of an alert's edge or an incident's path, drawn small on its page:
// each key's callers and callees (one hop, limited), with the edge or path marked.
// Path hops the graph does not know (yet) are drawn too, so the path is always whole.
import { api, Graph } from '../api';
import { el } from '../dom';
import { GraphCanvas } from '../graph/canvas';
import { edgeId, serviceDrawing } from '../graph/model';
import { graphHash } from './graph-state';

const PER_KEY_LIMIT = 40;

/** Draws into `parent` (already in the page, so the layout has its size). */
export async function neighbourhood(parent: HTMLElement, keys: string[], path: string[]): Promise<GraphCanvas> {
  const container = el('div', { id: 'neighbourhood-cy', class: 'cy small' });
  const section = el('div', { class: 'neighbourhood' }, container);
  parent.append(section);
  const graphs = await Promise.all([...new Set(keys)].map((k) =>
    api<Graph>(`/api/v1/graph?${new URLSearchParams({ focus: k, hops: '1', limit: String(PER_KEY_LIMIT) })}`)
      .catch(() => ({ nodes: [], edges: [], matched_nodes: 0, total_nodes: 0, total_edges: 0 }) as Graph)));
  const merged: Graph = { nodes: [], edges: [], matched_nodes: 0, total_nodes: 0, total_edges: 0 };
  const seenNodes = new Set<string>(), seenEdges = new Set<string>();
  for (const g of graphs) {
    for (const n of g.nodes) if (!seenNodes.has(n.id)) { seenNodes.add(n.id); merged.nodes.push(n); }
    for (const e of g.edges) { const id = edgeId(e.source, e.destination); if (!seenEdges.has(id)) { seenEdges.add(id); merged.edges.push(e); } }
  }
  const now = new Date().toISOString();
  for (const key of path) if (!seenNodes.has(key)) {
    seenNodes.add(key);
    const dot = key.lastIndexOf('.');
    merged.nodes.push({ id: key, service: dot > 0 ? key.slice(0, dot) : key, namespace: dot > 0 ? key.slice(dot + 1) : null });
  }
  for (let i = 0; i + 1 < path.length; i++) {
    const id = edgeId(path[i], path[i + 1]);
    if (!seenEdges.has(id)) {
      seenEdges.add(id);
      merged.edges.push({ source: path[i], destination: path[i + 1], calls: 0, errors: 0, first_seen: now, last_seen: now, mtls_ratio: null, status: 'alerted' });
    }
  }
  const canvas = new GraphCanvas(container, { node: (id) => { location.hash = graphHash({ focus: id }); } });
  section.append(canvas.index);
  canvas.update(serviceDrawing(merged));
  for (let i = 0; i < path.length; i++) {
    canvas.mark(path[i], 'path');
    if (i + 1 < path.length) canvas.mark(edgeId(path[i], path[i + 1]), 'path');
  }
  canvas.fit();
  container.dataset.pathEdges = String(canvas.cy.edges('.path').length);
  return canvas;
}
