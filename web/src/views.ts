// Alerts, alert page, incidents and baseline views.
import { Alert, api, Baseline, Incident, KINDS, SEVERITIES, STATES, workloadKey } from './api';
import { clear, el, fmtNum, fmtTime, hashLink, kv, pct } from './dom';
import { onLive } from './live';
import { elements, GraphData, makeCy } from './graph';

function select(id: string, label: string, values: string[]): HTMLSelectElement {
  return el('select', { id, 'aria-label': label }, el('option', { value: '' }, `any ${label}`),
    ...values.map((v) => el('option', { value: v }, v)));
}

function alertRow(a: Alert, refresh: () => void): HTMLTableRowElement {
  const act = (verb: 'ack' | 'accept') => {
    const b = el('button', { type: 'button', class: `btn-${verb}` }, verb);
    b.disabled = a.state !== 'open' && !(verb === 'accept' && a.state === 'acked');
    b.addEventListener('click', async () => {
      b.disabled = true;
      await api<Alert>(`/api/v1/alerts/${encodeURIComponent(a.id)}/${verb}`, { method: 'POST', body: '{}' });
      refresh();
    });
    return b;
  };
  const row = el('tr', { class: `alert sev-${a.severity}` },
    el('td', {}, fmtTime(a.last_seen)),
    el('td', {}, el('span', { class: `badge sev-${a.severity}` }, a.severity)),
    el('td', {}, a.kind),
    el('td', { class: 'summary' }, hashLink(['alerts', a.id], a.summary)),
    el('td', { class: 'state' }, a.state),
    el('td', {}, act('ack'), ' ', act('accept')));
  row.dataset.id = a.id;
  return row;
}

export async function renderAlerts(root: HTMLElement): Promise<() => void> {
  const kind = select('f-kind', 'kind', KINDS);
  const severity = select('f-severity', 'severity', SEVERITIES);
  const state = select('f-state', 'state', STATES);
  const body = el('tbody', { id: 'alert-rows' });
  root.append(el('section', {}, el('h2', {}, 'Alerts'),
    el('div', { class: 'filters' }, kind, severity, state),
    el('table', { class: 'list alerts' },
      el('thead', {}, el('tr', {}, el('th', {}, 'time'), el('th', {}, 'severity'), el('th', {}, 'kind'), el('th', {}, 'summary'), el('th', {}, 'state'), el('th', {}, ''))),
      body)));
  const alerts = new Map<string, Alert>();
  const matches = (a: Alert) => (!kind.value || a.kind === kind.value)
    && (!severity.value || SEVERITIES.indexOf(a.severity) >= SEVERITIES.indexOf(severity.value))
    && (!state.value || a.state === state.value);
  const paint = () => {
    const rows = [...alerts.values()].filter(matches).sort((x, y) => y.last_seen.localeCompare(x.last_seen));
    body.replaceChildren(...rows.map((a) => alertRow(a, load)));
    if (rows.length === 0) body.append(el('tr', {}, el('td', { colspan: '6', class: 'muted' }, 'No alerts.')));
  };
  async function load(): Promise<void> {
    const q = new URLSearchParams({ limit: '500' });
    for (const [k, s] of [['kind', kind], ['severity', severity], ['state', state]] as const) if (s.value) q.set(k, s.value);
    const res = await api<{ alerts: Alert[] }>(`/api/v1/alerts?${q}`);
    alerts.clear();
    for (const a of res.alerts) alerts.set(a.id, a);
    paint();
  }
  for (const s of [kind, severity, state]) s.addEventListener('change', () => void load());
  await load();
  return onLive((k, v) => { if (k === 'alert') { alerts.set((v as Alert).id, v as Alert); paint(); } });
}

export async function renderAlert(root: HTMLElement, id: string): Promise<() => void> {
  const a = await api<Alert>(`/api/v1/alerts/${encodeURIComponent(id)}`);
  const evidence = Object.entries(a.evidence ?? {});
  root.append(el('section', { class: 'alert-page' },
    el('p', {}, hashLink(['alerts'], '← all alerts')),
    el('h2', {}, el('span', { class: `badge sev-${a.severity}` }, a.severity), ' ', a.kind),
    el('p', { class: 'summary' }, a.summary),
    kv([['score', fmtNum(a.score)], ['state', a.state], ['count', fmtNum(a.count)],
      ['source', `${workloadKey(a.source)}${a.source.principal ? ` (${a.source.principal})` : ''}`],
      ['destination', a.destination ? `${workloadKey(a.destination)}${a.destination.principal ? ` (${a.destination.principal})` : ''}` : '—'],
      ['method / route', `${a.method ?? '—'} ${a.route ?? ''}`],
      ['entry', a.entry ? `${a.entry.service} ${a.entry.route}` : '—'],
      ['first seen', fmtTime(a.first_seen)], ['last seen', fmtTime(a.last_seen)],
      ['incident', a.incident_id ? hashLink(['incidents', a.incident_id], a.incident_id) : '—']]),
    el('h3', {}, 'Evidence (numbers behind the score)'),
    evidence.length ? kv(evidence.map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])) : el('p', { class: 'muted' }, 'none'),
    el('h3', {}, 'Example traces'), el('ul', { class: 'mono' }, ...a.trace_ids.map((t) => el('li', {}, t)))));
  return () => {};
}

export async function renderIncidents(root: HTMLElement): Promise<() => void> {
  const res = await api<{ incidents: Incident[] }>('/api/v1/incidents?limit=200');
  root.append(el('section', {}, el('h2', {}, 'Incidents'),
    el('table', { class: 'list' },
      el('tr', {}, el('th', {}, 'last seen'), el('th', {}, 'severity'), el('th', {}, 'source'), el('th', {}, 'findings'), el('th', {}, 'path'), el('th', {}, 'summary')),
      ...res.incidents.map((i) => el('tr', { class: 'incident' }, el('td', {}, fmtTime(i.last_seen)),
        el('td', {}, el('span', { class: `badge sev-${i.severity}` }, i.severity)), el('td', {}, workloadKey(i.source)),
        el('td', {}, String(i.alert_ids.length)), el('td', {}, i.path.join(' → ')),
        el('td', {}, hashLink(['incidents', i.id], i.summary || i.id))))),
    res.incidents.length ? null : el('p', { class: 'muted' }, 'No incidents.')));
  return () => {};
}

export async function renderIncident(root: HTMLElement, id: string): Promise<() => void> {
  const [detail, graph] = await Promise.all([
    api<{ incident: Incident; alerts: Alert[] }>(`/api/v1/incidents/${encodeURIComponent(id)}`),
    api<GraphData>('/api/v1/graph'),
  ]);
  const inc = detail.incident;
  const alerts = [...detail.alerts].sort((x, y) => x.first_seen.localeCompare(y.first_seen));
  const t0 = Date.parse(inc.first_seen), span = Math.max(1, Date.parse(inc.last_seen) - t0);
  const canvas = el('div', { id: 'incident-cy', class: 'cy small' });
  root.append(el('section', { class: 'incident-page' },
    el('p', {}, hashLink(['incidents'], '← all incidents')),
    el('h2', {}, el('span', { class: `badge sev-${inc.severity}` }, inc.severity), ' incident from ', workloadKey(inc.source)),
    el('p', { class: 'summary' }, inc.summary),
    kv([['score', fmtNum(inc.score)], ['first seen', fmtTime(inc.first_seen)], ['last seen', fmtTime(inc.last_seen)], ['suppressed', fmtNum(inc.suppressed)]]),
    el('h3', {}, 'Lateral-movement path'),
    el('p', { id: 'incident-path', class: 'mono' }, inc.path.length ? inc.path.join(' → ') : 'no multi-hop path'),
    canvas,
    el('h3', {}, 'Timeline'),
    el('ol', { class: 'timeline' }, ...alerts.map((a) => {
      const left = ((Date.parse(a.first_seen) - t0) / span) * 100;
      return el('li', {}, el('span', { class: 'tick', style: `--at:${Math.min(100, Math.max(0, left)).toFixed(1)}%` }),
        el('time', {}, fmtTime(a.first_seen)), ' ', el('span', { class: `badge sev-${a.severity}` }, a.severity), ' ',
        hashLink(['alerts', a.id], `${a.kind}: ${a.summary}`));
    }))));
  // Draw the whole graph, plus any path hop the graph does not know yet, and highlight the path.
  const known = new Set(graph.nodes.map((n) => n.id));
  for (const key of inc.path) if (!known.has(key)) {
    const dot = key.lastIndexOf('.');
    graph.nodes.push({ id: key, service: dot > 0 ? key.slice(0, dot) : key, namespace: dot > 0 ? key.slice(dot + 1) : '' });
    known.add(key);
  }
  const edgeKeys = new Set(graph.edges.map((e) => `${e.source}\u0000${e.destination}`));
  for (let i = 0; i + 1 < inc.path.length; i++) if (!edgeKeys.has(`${inc.path[i]}\u0000${inc.path[i + 1]}`)) {
    graph.edges.push({ source: inc.path[i], destination: inc.path[i + 1], calls: 0, errors: 0, first_seen: inc.first_seen, last_seen: inc.last_seen, mtls_ratio: null, status: 'alerted' });
  }
  const cy = makeCy(canvas, elements(graph));
  for (let i = 0; i < inc.path.length; i++) {
    cy.getElementById(inc.path[i]).addClass('path');
    if (i + 1 < inc.path.length) cy.getElementById(`e:${inc.path[i]}\u0000${inc.path[i + 1]}`).addClass('path');
  }
  canvas.dataset.pathEdges = String(cy.edges('.path').length);
  return () => cy.destroy();
}

export async function renderBaseline(root: HTMLElement): Promise<() => void> {
  const section = el('section', { class: 'baseline' });
  root.append(section);
  const paint = (b: Baseline) => {
    clear(section);
    const ratio = b.learning_period_seconds > 0 ? Math.min(1, b.learned_seconds / b.learning_period_seconds) : 1;
    const bar = el('progress', { id: 'learning-progress', max: '1', value: String(ratio) });
    const end = el('button', { type: 'button', id: 'end-learning' }, 'End learning now');
    end.disabled = b.state !== 'learning';
    end.addEventListener('click', async () => {
      if (!confirm('End learning and start detecting now?')) return;
      paint(await api<Baseline>('/api/v1/baseline/detect', { method: 'POST', body: '{}' }));
    });
    section.append(el('h2', {}, 'Baseline'),
      el('p', {}, 'State: ', el('strong', { id: 'baseline-state' }, b.state)),
      el('div', { class: 'progress' }, bar, ` ${pct(ratio)} — ${fmtNum(b.learned_seconds / 60, 1)} of ${fmtNum(b.learning_period_seconds / 60, 1)} minutes of event time learned`),
      end,
      kv([['learning started', fmtTime(b.learning_started)], ['learning ends', fmtTime(b.learning_ends)], ['watermark', fmtTime(b.watermark)],
        ...Object.entries(b.counts ?? {}).map(([k, v]) => [k, fmtNum(v)] as [string, string])]),
      el('h3', {}, 'Recent rollout changes'),
      b.rollout_changes.length ? el('table', { class: 'list' },
        el('tr', {}, el('th', {}, 'workload'), el('th', {}, 'version'), el('th', {}, 'first seen'), el('th', {}, 'summary')),
        ...b.rollout_changes.map((r) => el('tr', {}, el('td', {}, r.workload), el('td', {}, r.version), el('td', {}, fmtTime(r.first_seen)), el('td', {}, r.summary))))
        : el('p', { class: 'muted' }, 'none'));
  };
  paint(await api<Baseline>('/api/v1/baseline'));
  const timer = window.setInterval(async () => { try { paint(await api<Baseline>('/api/v1/baseline')); } catch { /* keep */ } }, 5000);
  return () => window.clearInterval(timer);
}
