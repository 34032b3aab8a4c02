// One incident: its findings on a timeline (with ATT&CK tags and trace links), the
// techniques they add up to, and the lateral-movement path drawn in its neighbourhood.
import { api, IncidentDetail, Technique, workloadKey } from '../api';
import { el, fmtNum, fmtTime, hashLink, kv } from '../dom';
import { attackTags, techniqueTag, traceList } from '../links';
import { neighbourhood } from './neighbourhood';

export async function renderIncident(root: HTMLElement, id: string): Promise<() => void> {
  const detail = await api<IncidentDetail>(`/api/v1/incidents/${encodeURIComponent(id)}`);
  const inc = detail.incident;
  const alerts = [...detail.alerts].sort((x, y) => x.first_seen.localeCompare(y.first_seen));
  const techniques = new Map<string, Technique>();
  for (const a of alerts) for (const t of a.attack) techniques.set(t.id, t);
  const traces = [...new Set(alerts.flatMap((a) => a.trace_ids))].slice(0, 10);
  const graph = el('div', { class: 'neighbourhood-holder' });
  root.append(el('section', { class: 'incident-page' },
    el('p', {}, hashLink(['incidents'], '← all incidents')),
    el('h2', {}, el('span', { class: `badge sev-${inc.severity}` }, inc.severity), ' incident from ', workloadKey(inc.source)),
    el('p', { class: 'summary' }, inc.summary),
    kv([['score', fmtNum(inc.score)], ['first seen', fmtTime(inc.first_seen)], ['last seen', fmtTime(inc.last_seen)], ['suppressed', fmtNum(inc.suppressed)]]),
    el('h3', {}, 'ATT&CK'),
    el('p', { id: 'incident-attack', class: 'attack' }, ...[...techniques.values()].flatMap((t) => [techniqueTag(t), ` ${t.name} `])),
    el('h3', {}, 'Lateral-movement path'),
    el('p', { id: 'incident-path', class: 'mono' }, inc.path.length ? inc.path.join(' → ') : 'no multi-hop path'),
    graph,
    el('h3', {}, 'Timeline'),
    el('ol', { class: 'timeline' }, ...alerts.map((a) => el('li', {}, el('span', { class: 'tick' }),
      el('time', {}, fmtTime(a.first_seen)), ' ', el('span', { class: `badge sev-${a.severity}` }, a.severity), ' ',
      attackTags(a), ' ', hashLink(['alerts', a.id], `${a.kind}: ${a.summary}`)))),
    el('h3', {}, 'Example traces'), await traceList(traces)));
  const keys = inc.path.length ? inc.path : [workloadKey(inc.source)];
  const canvas = await neighbourhood(graph, keys, inc.path);
  return () => canvas.destroy();
}
