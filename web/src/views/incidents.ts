// The incident list.
import { api, Incident, workloadKey } from '../api';
import { el, fmtTime, hashLink } from '../dom';

export async function renderIncidents(root: HTMLElement): Promise<() => void> {
  const res = await api<{ incidents: Incident[] }>('/api/v1/incidents?limit=200');
  root.append(el('section', {}, el('h2', {}, 'Incidents'),
    el('table', { class: 'list' },
      el('tr', {}, ...['last seen', 'severity', 'source', 'findings', 'path', 'summary'].map((h) => el('th', {}, h))),
      ...res.incidents.map((i) => el('tr', { class: 'incident' }, el('td', {}, fmtTime(i.last_seen)),
        el('td', {}, el('span', { class: `badge sev-${i.severity}` }, i.severity)), el('td', {}, workloadKey(i.source)),
        el('td', {}, String(i.alert_ids.length)), el('td', {}, i.path.join(' → ')),
        el('td', {}, hashLink(['incidents', i.id], i.summary || i.id))))),
    res.incidents.length ? null : el('p', { class: 'muted' }, 'No incidents.')));
  return () => {};
}
