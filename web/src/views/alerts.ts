// The live alert list: filters, ack and accept (failures shown on the row), SSE updates.
import { Alert, AlertPage, api, KINDS, post, SEVERITIES, STATES } from '../api';
import { el, fmtTime, hashLink, showError } from '../dom';
import { attackTags } from '../links';
import { onLive } from '../live';

function select(id: string, label: string, values: string[]): HTMLSelectElement {
  return el('select', { id, 'aria-label': label }, el('option', { value: '' }, `any ${label}`),
    ...values.map((v) => el('option', { value: v }, v)));
}

function alertRow(a: Alert, refresh: () => Promise<void>): HTMLTableRowElement {
  const actions = el('td', { class: 'actions' });
  const act = (verb: 'ack' | 'accept') => {
    const b = el('button', { type: 'button', class: `btn-${verb}` }, verb);
    b.disabled = a.state !== 'open' && !(verb === 'accept' && a.state === 'acked');
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await post<Alert>(`/api/v1/alerts/${encodeURIComponent(a.id)}/${verb}`);
        await refresh();
      } catch (error) {
        b.disabled = false;
        showError(actions, verb === 'ack' ? 'Ack' : 'Accept', error);
      }
    });
    return b;
  };
  actions.append(act('ack'), ' ', act('accept'));
  const row = el('tr', { class: `alert sev-${a.severity}` },
    el('td', {}, fmtTime(a.last_seen)),
    el('td', {}, el('span', { class: `badge sev-${a.severity}` }, a.severity)),
    el('td', {}, a.kind),
    el('td', { class: 'attack-cell' }, attackTags(a)),
    el('td', { class: 'summary' }, hashLink(['alerts', a.id], a.summary)),
    el('td', { class: 'state' }, a.state),
    actions);
  row.dataset.id = a.id;
  return row;
}

export async function renderAlerts(root: HTMLElement): Promise<() => void> {
  const kind = select('f-kind', 'kind', KINDS);
  const severity = select('f-severity', 'severity', SEVERITIES);
  const state = select('f-state', 'state', STATES);
  const body = el('tbody', { id: 'alert-rows' });
  const section = el('section', {}, el('h2', {}, 'Alerts'),
    el('div', { class: 'filters' }, kind, severity, state),
    el('table', { class: 'list alerts' },
      el('thead', {}, el('tr', {}, ...['time', 'severity', 'kind', 'ATT&CK', 'summary', 'state', ''].map((h) => el('th', {}, h)))),
      body));
  root.append(section);
  const alerts = new Map<string, Alert>();
  const matches = (a: Alert) => (!kind.value || a.kind === kind.value)
    && (!severity.value || SEVERITIES.indexOf(a.severity) >= SEVERITIES.indexOf(severity.value as Alert['severity']))
    && (!state.value || a.state === state.value);
  const paint = () => {
    const rows = [...alerts.values()].filter(matches).sort((x, y) => y.last_seen.localeCompare(x.last_seen));
    body.replaceChildren(...rows.map((a) => alertRow(a, load)));
    if (rows.length === 0) body.append(el('tr', {}, el('td', { colspan: '7', class: 'muted' }, 'No alerts.')));
  };
  async function load(): Promise<void> {
    const q = new URLSearchParams({ limit: '500' });
    for (const [k, s] of [['kind', kind], ['severity', severity], ['state', state]] as const) if (s.value) q.set(k, s.value);
    const res = await api<AlertPage>(`/api/v1/alerts?${q}`);
    alerts.clear();
    for (const a of res.alerts) alerts.set(a.id, a);
    paint();
  }
  for (const s of [kind, severity, state]) s.addEventListener('change', () => { load().catch((e) => showError(section, 'Loading alerts', e)); });
  await load();
  return onLive((k, v) => { if (k === 'alert') { alerts.set((v as Alert).id, v as Alert); paint(); } });
}
