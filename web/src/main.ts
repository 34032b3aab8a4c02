// Hash router (`#/view/id?query`), theme toggle and the live connection.
import './style.css';
import { api } from './api';
import { clear, el } from './dom';
import { connectLive } from './live';
import { renderAlert } from './views/alert';
import { renderAlerts } from './views/alerts';
import { renderBaseline } from './views/baseline';
import { renderGraph } from './views/graph';
import { renderIncident } from './views/incident';
import { renderIncidents } from './views/incidents';
import { renderPolicy } from './views/policy';
import { renderPosture } from './views/posture';

const app = document.getElementById('app')!;
let teardown: () => void = () => {};

// The theme follows prefers-color-scheme until the operator picks one with the toggle.
function applyTheme(theme: string | null): void {
  if (theme) document.documentElement.dataset.theme = theme; else delete document.documentElement.dataset.theme;
}
applyTheme(localStorage.getItem('eastwest.theme'));
document.getElementById('theme')!.addEventListener('click', () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === 'dark'
    : matchMedia('(prefers-color-scheme: dark)').matches;
  const next = dark ? 'light' : 'dark';
  localStorage.setItem('eastwest.theme', next);
  applyTheme(next);
  void route();
});

async function route(): Promise<void> {
  teardown();
  teardown = () => {};
  clear(app);
  delete app.dataset.ready;
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?', 2);
  const parts = path.split('/').map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  const params = new URLSearchParams(query);
  const view = parts[0] || 'graph';
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('active', a.dataset.view === view);
  app.dataset.view = view;
  try {
    if (view === 'alerts' && parts[1]) teardown = await renderAlert(app, parts[1]);
    else if (view === 'alerts') teardown = await renderAlerts(app);
    else if (view === 'incidents' && parts[1]) teardown = await renderIncident(app, parts[1]);
    else if (view === 'incidents') teardown = await renderIncidents(app);
    else if (view === 'baseline') teardown = await renderBaseline(app);
    else if (view === 'policy') teardown = await renderPolicy(app, params);
    else if (view === 'posture') teardown = await renderPosture(app);
    else teardown = await renderGraph(app, params);
    app.dataset.ready = view;
  } catch (error) {
    app.append(el('p', { class: 'error', role: 'alert' }, `Could not load: ${error instanceof Error ? error.message : String(error)}`));
  }
}

window.addEventListener('hashchange', () => void route());
// Authenticate (asks for the token on a 401) before opening the SSE stream.
void api('/api/v1/stats').catch(() => null).then(() => {
  connectLive(document.getElementById('live')!);
  void route();
});
