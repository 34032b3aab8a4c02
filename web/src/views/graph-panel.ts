// The graph view's side panel: one service (its calls, callers and blast radius), one
// edge (endpoints, trace links, alerts with their ATT&CK tags), one namespace edge.
import { api, EdgeDetail, NamespaceGraph, ServiceDetail } from '../api';
import { clear, el, fmtNum, fmtTime, hashLink, kv, pct } from '../dom';
import { attackTags, traceList } from '../links';
import { edgeLabel, namespaceLabel } from '../graph/model';
import { graphHash } from './graph-state';

export async function showService(panel: HTMLElement, key: string, onRadius: (keys: string[]) => void): Promise<void> {
  clear(panel);
  let d: ServiceDetail;
  try { d = await api<ServiceDetail>(`/api/v1/graph/service/${encodeURIComponent(key)}`); } catch (e) { panel.append(el('p', { class: 'error', role: 'alert' }, String(e))); return; }
  onRadius(d.blast_radius);
  const row = (other: string, e: { calls: number; status: string }) =>
    el('li', {}, el('a', { href: graphHash({ focus: other }) }, other), ` (${fmtNum(e.calls)} calls, ${e.status})`);
  panel.append(
    el('h3', {}, d.service),
    el('p', {}, el('a', { id: 'focus-link', class: 'button', href: graphHash({ focus: key }) }, 'Focus on its neighbourhood')),
    el('h4', {}, `Calls (${d.calls.length})`), el('ul', {}, ...d.calls.map((e) => row(e.destination, e))),
    el('h4', {}, `Called by (${d.callers.length})`), el('ul', {}, ...d.callers.map((e) => row(e.source, e))),
    el('h4', {}, `Blast radius (${d.blast_radius.length})`),
    el('ul', { id: 'blast-radius' }, ...d.blast_radius.map((k) => el('li', {}, k))),
  );
}

export async function showEdge(panel: HTMLElement, source: string, destination: string): Promise<void> {
  clear(panel);
  const q = new URLSearchParams({ source, destination });
  let d: EdgeDetail;
  try { d = await api<EdgeDetail>(`/api/v1/graph/edge?${q}`); } catch (e) { panel.append(el('p', { class: 'error', role: 'alert' }, String(e))); return; }
  panel.append(
    el('h3', {}, `${d.source} → ${d.destination}`),
    kv([['status', d.status], ['calls', fmtNum(d.calls)], ['errors', fmtNum(d.errors)],
      ['error ratio', d.calls > 0 ? pct(d.errors / d.calls) : '—'], ['mTLS ratio', pct(d.mtls_ratio)],
      ['rate', edgeLabel(d).split(' · ')[0]], ['protocols', (d.protocols ?? []).join(', ') || '—'],
      ['first seen', fmtTime(d.first_seen)], ['last seen', fmtTime(d.last_seen)]]),
    el('h4', {}, 'Endpoints'),
    el('table', { class: 'list' }, el('tr', {}, el('th', {}, 'method'), el('th', {}, 'route'), el('th', {}, 'calls'), el('th', {}, 'errors'), el('th', {}, 'last seen')),
      ...d.endpoints.map((p) => el('tr', {}, el('td', {}, p.method), el('td', {}, p.route), el('td', {}, fmtNum(p.calls)), el('td', {}, fmtNum(p.errors)), el('td', {}, fmtTime(p.last_seen))))),
    el('h4', {}, 'Example traces'),
    await traceList(d.trace_ids),
    el('h4', {}, 'Alerts'),
    el('ul', { class: 'edge-alerts' }, ...d.alerts.map((a) => el('li', {}, attackTags(a), ' ', hashLink(['alerts', a.id], `${a.severity} ${a.kind}: ${a.summary}`)))),
  );
}

export function showNamespaceEdge(panel: HTMLElement, graph: NamespaceGraph, source: string, destination: string): void {
  clear(panel);
  const e = graph.edges.find((x) => x.source === source && x.destination === destination);
  if (!e) return;
  panel.append(
    el('h3', {}, `${namespaceLabel(e.source)} → ${namespaceLabel(e.destination)}`),
    kv([['service edges', fmtNum(e.edges)], ['status', e.status], ['calls', fmtNum(e.calls)], ['errors', fmtNum(e.errors)],
      ['mTLS ratio', pct(e.mtls_ratio)], ['first seen', fmtTime(e.first_seen)], ['last seen', fmtTime(e.last_seen)]]),
    el('p', {}, el('a', { href: graphHash({ ns: e.source }) }, `Open ${namespaceLabel(e.source)}`), ' · ',
      el('a', { href: graphHash({ ns: e.destination }) }, `Open ${namespaceLabel(e.destination)}`)),
  );
}
