// One alert: what happened, its ATT&CK techniques, the evidence behind the score,
// its traces (links when a trace UI is configured) and its edge's neighbourhood.
import { Alert, api, post, workloadKey } from '../api';
import { el, fmtNum, fmtTime, hashLink, kv, showError } from '../dom';
import { techniqueTag, traceList } from '../links';
import { graphHash } from './graph-state';
import { neighbourhood } from './neighbourhood';

export async function renderAlert(root: HTMLElement, id: string): Promise<() => void> {
  const a = await api<Alert>(`/api/v1/alerts/${encodeURIComponent(id)}`);
  const evidence = Object.entries(a.evidence ?? {});
  const who = (w: Alert['source'] | null) => w ? `${workloadKey(w)}${w.principal ? ` (${w.principal})` : ''}` : '—';
  const actions = el('p', { class: 'actions' });
  for (const verb of ['ack', 'accept'] as const) {
    const b = el('button', { type: 'button', class: `btn-${verb}` }, verb);
    b.disabled = a.state !== 'open' && !(verb === 'accept' && a.state === 'acked');
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await post<Alert>(`/api/v1/alerts/${encodeURIComponent(a.id)}/${verb}`); location.reload(); } catch (e) { b.disabled = false; showError(actions, verb === 'ack' ? 'Ack' : 'Accept', e); }
    });
    actions.append(b, ' ');
  }
  const keys = [workloadKey(a.source), ...(a.destination ? [workloadKey(a.destination)] : [])];
  const graph = el('div', { class: 'neighbourhood-holder' });
  root.append(el('section', { class: 'alert-page' },
    el('p', {}, hashLink(['alerts'], '← all alerts')),
    el('h2', {}, el('span', { class: `badge sev-${a.severity}` }, a.severity), ' ', a.kind),
    el('p', { class: 'summary' }, a.summary),
    actions,
    el('h3', {}, 'ATT&CK'),
    a.attack.length
      ? el('ul', { id: 'attack-techniques', class: 'attack-list' }, ...a.attack.map((t) => el('li', {}, techniqueTag(t), ` ${t.name} — ${t.tactic}`)))
      : el('p', { class: 'muted' }, 'No technique: this kind is a notice or a count, not evidence of one.'),
    kv([['score', fmtNum(a.score)], ['state', a.state], ['count', fmtNum(a.count)],
      ['source', who(a.source)], ['destination', who(a.destination)],
      ['method / route', `${a.method ?? '—'} ${a.route ?? ''}`],
      ['entry', a.entry ? `${a.entry.service} ${a.entry.route}` : '—'],
      ['first seen', fmtTime(a.first_seen)], ['last seen', fmtTime(a.last_seen)],
      ['incident', a.incident_id ? hashLink(['incidents', a.incident_id], a.incident_id) : '—']]),
    el('h3', {}, 'Evidence (numbers behind the score)'),
    evidence.length ? kv(evidence.map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])) : el('p', { class: 'muted' }, 'none'),
    el('h3', {}, 'Example traces'), await traceList(a.trace_ids),
    el('h3', {}, 'Neighbourhood of the edge'),
    el('p', {}, el('a', { href: graphHash({ focus: keys[0] }) }, 'Open in the graph')),
    graph));
  const canvas = await neighbourhood(graph, keys, keys.length === 2 ? keys : []);
  return () => canvas.destroy();
}
