// Least-privilege policies from the baseline (a dialect, optionally one namespace), shown
// as text with Copy and Download, and a backtest of pasted policies over the history.
// Service names, routes and principals come from telemetry (attacker-controlled): the
// YAML and every table cell go in as text nodes, never as HTML.
import { BacktestReport, fetchDocument, PolicyEdgeRoute, postText } from '../api';
import { clear, el, fmtNum, fmtTime, hashLink, showError } from '../dom';

const DIALECTS = ['istio', 'networkpolicy', 'cilium', 'linkerd'] as const;
type Dialect = typeof DIALECTS[number];

function dialectOf(value: string | null): Dialect {
  return (DIALECTS as readonly string[]).includes(value ?? '') ? value as Dialect : 'istio';
}

/** `#/policy?format=…&namespace=…`, so a dialect and namespace can be linked. */
function policyHash(dialect: Dialect, namespace: string): string {
  const q = new URLSearchParams({ format: dialect });
  if (namespace) q.set('namespace', namespace);
  return `#/policy?${q}`;
}

function status(where: HTMLElement, text: string): void {
  where.textContent = text;
}

/** Copies with the Clipboard API; where it is missing or refused, selects the text. */
async function copyText(pre: HTMLElement, note: HTMLElement): Promise<void> {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(pre.textContent ?? '');
    status(note, 'Copied to the clipboard.');
  } catch {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const selection = getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    status(note, 'Selected: press Ctrl+C (⌘C) to copy.');
  }
}

function download(text: string, filename: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/yaml' }));
  const a = el('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function deniedRow(d: PolicyEdgeRoute): HTMLTableRowElement {
  const row = el('tr', { class: 'denied' },
    el('td', {}, `${d.source} → ${d.destination}`),
    el('td', { class: 'mono' }, `${d.method} ${d.route}`),
    el('td', {}, fmtNum(d.calls)),
    el('td', {}, fmtTime(d.first_seen)),
    el('td', {}, fmtTime(d.last_seen)));
  row.title = d.by;
  return row;
}

function backtestResult(r: BacktestReport): HTMLElement {
  const blocked = r.alerts.filter((a) => a.blocked);
  return el('div', { class: 'backtest-report' },
    el('p', {},
      `${fmtNum(r.documents)} documents; ${fmtNum(r.calls)} calls since ${fmtTime(r.since)}: `,
      `${fmtNum(r.allowed_calls)} allowed, ${fmtNum(r.default_allowed_calls)} allowed by default (no policy selects the callee), `,
      el('strong', { id: 'backtest-denied-calls' }, fmtNum(r.denied_calls)), ' denied. ',
      'Alerts whose calls would have been blocked: ',
      el('strong', { id: 'backtest-blocked-alerts' }, String(blocked.length)), ` of ${r.alerts.length}.`),
    r.denied.length
      ? el('table', { class: 'list', id: 'backtest-denied' },
        el('tr', {}, ...['edge', 'route', 'calls', 'first seen', 'last seen'].map((h) => el('th', {}, h))),
        ...r.denied.map(deniedRow))
      : el('p', { class: 'muted' }, 'Nothing in the history would have been denied.'),
    blocked.length
      ? el('ul', { class: 'blocked-alerts' }, ...blocked.map((a) =>
        el('li', {}, hashLink(['alerts', a.id], a.summary || a.id), ` (${a.kind}, ${fmtNum(a.denied_calls)} of ${fmtNum(a.calls)} calls denied)`)))
      : null);
}

export async function renderPolicy(root: HTMLElement, params: URLSearchParams): Promise<() => void> {
  let dialect = dialectOf(params.get('format'));
  let namespace = params.get('namespace') ?? '';
  let loads = 0;

  const picker = el('select', { id: 'policy-format', 'aria-label': 'dialect' },
    ...DIALECTS.map((d) => el('option', { value: d }, d)));
  picker.value = dialect;
  const nsInput = el('input', { id: 'policy-namespace', type: 'text', placeholder: 'all namespaces', 'aria-label': 'namespace', value: namespace });
  const copy = el('button', { type: 'button', id: 'policy-copy' }, 'Copy');
  const save = el('button', { type: 'button', id: 'policy-download' }, 'Download');
  const form = el('form', { class: 'toolbar', id: 'policy-form' },
    el('label', {}, 'Dialect ', picker), el('label', {}, 'Namespace ', nsInput),
    el('button', { type: 'submit' }, 'Generate'), copy, save);
  const note = el('span', { class: 'muted', id: 'policy-note', role: 'status' });
  const pre = el('pre', { id: 'policy-yaml', class: 'policy-yaml mono' });
  const output = el('div', { class: 'policy-output' }, pre);

  const load = async () => {
    const mine = ++loads;
    copy.disabled = save.disabled = true;
    delete pre.dataset.format;
    status(note, 'Loading…');
    const q = new URLSearchParams({ format: dialect });
    if (namespace) q.set('namespace', namespace);
    try {
      const text = await (await fetchDocument(`/api/v1/policy?${q}`)).text();
      if (mine !== loads) return;
      output.querySelector(':scope > .error[role=alert]')?.remove();
      pre.textContent = text;
      pre.dataset.format = dialect;
      copy.disabled = save.disabled = false;
      status(note, '');
    } catch (error) {
      if (mine !== loads) return;
      pre.textContent = '';
      status(note, '');
      showError(output, 'Loading the policy', error);
    }
  };
  const reload = () => {
    dialect = dialectOf(picker.value);
    namespace = nsInput.value.trim();
    history.replaceState(null, '', policyHash(dialect, namespace));
    void load();
  };
  picker.addEventListener('change', reload);
  form.addEventListener('submit', (event) => { event.preventDefault(); reload(); });
  copy.addEventListener('click', () => void copyText(pre, note));
  save.addEventListener('click', () => {
    download(pre.textContent ?? '', `eastwest-${dialect}.yaml`);
    status(note, `Downloaded eastwest-${dialect}.yaml.`);
  });

  // Backtest: pasted policies replayed over the last 7 days of calls (read-only).
  const pasted = el('textarea', { id: 'backtest-yaml', class: 'mono', rows: '10', spellcheck: 'false', 'aria-label': 'policy YAML to backtest', placeholder: 'Paste policy YAML (Istio, NetworkPolicy, Cilium or Linkerd; several documents)' });
  const useShown = el('button', { type: 'button', id: 'backtest-use' }, 'Use the YAML above');
  const run = el('button', { type: 'button', id: 'backtest-run' }, 'Run backtest');
  const result = el('div', { id: 'backtest-result' });
  const backtest = el('div', { class: 'backtest' },
    el('h3', {}, 'Backtest'),
    el('p', { class: 'muted' }, 'Replays the last 7 days of calls against the policies and shows what they would have denied and which alerts they would have blocked. Nothing is applied.'),
    pasted, el('div', { class: 'toolbar' }, run, useShown), result);
  useShown.addEventListener('click', () => { pasted.value = pre.textContent ?? ''; });
  run.addEventListener('click', async () => {
    run.disabled = true;
    backtest.querySelector(':scope > .error[role=alert]')?.remove();
    clear(result);
    result.append(el('p', { class: 'muted' }, 'Running…'));
    try {
      const report = await postText<BacktestReport>('/api/v1/policy/backtest', pasted.value, 'application/yaml');
      clear(result);
      result.append(backtestResult(report));
    } catch (error) {
      clear(result);
      showError(backtest, 'Backtest', error);
    } finally {
      run.disabled = false;
    }
  });

  root.append(el('section', { class: 'policy-view' },
    el('h2', {}, 'Policy'),
    el('p', { class: 'muted' }, 'Least-privilege allow policies from the newest baseline snapshot; calls behind alerts nobody accepted are left out. Review before applying: eastwest applies nothing.'),
    form, note, output, backtest));
  await load();
  return () => { loads++; };
}
