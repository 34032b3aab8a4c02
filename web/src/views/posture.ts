// Posture: ranked, explained findings over the call history, the blast-radius summary
// (what each caller reaches under default-allow, as observed, and under least privilege),
// and the audit report. Subjects come from telemetry: text nodes only.
import { api, BlastRadius, fetchDocument, Posture, PostureFinding, token } from '../api';
import { el, fmtNum, fmtTime, kv, pct, showError } from '../dom';

const REPORT = '/api/v1/report?format=html';
const BLAST_ROWS = 20;

function findingRow(f: PostureFinding): HTMLTableRowElement {
  const row = el('tr', { class: `finding sev-${f.severity}` },
    el('td', {}, String(f.rank)),
    el('td', {}, el('span', { class: `badge sev-${f.severity}` }, f.severity)),
    el('td', {}, f.kind),
    el('td', { class: 'subject' }, f.subject),
    el('td', {}, f.explanation));
  row.dataset.kind = f.kind;
  return row;
}

function blastRow(b: BlastRadius): HTMLTableRowElement {
  const reach = (r: BlastRadius['observed']) => `${fmtNum(r.workloads)} workloads, ${fmtNum(r.sensitive_endpoints)} sensitive (score ${fmtNum(r.score)})`;
  return el('tr', { class: 'blast' },
    el('td', {}, b.workload),
    el('td', {}, reach(b.default_allow)),
    el('td', {}, reach(b.observed)),
    el('td', {}, reach(b.least_privilege)),
    el('td', {}, pct(b.cut)),
    el('td', { class: 'mono' }, b.sensitive_reached.join(', ') || '—'));
}

function summaryValue(value: unknown, key: string): string {
  if (typeof value === 'number') return key.includes('cut') ? pct(value) : fmtNum(value);
  return value === null || value === undefined ? '—' : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * The HTML report: a plain link when no token is in use. With a token the link cannot
 * carry it, so a button fetches the report with it and opens it from a Blob URL (the
 * tab is opened at the click, so no popup blocker stops it after the wait).
 */
function reportLinks(): HTMLElement {
  const link = el('a', { href: REPORT, id: 'report-link', class: 'button', target: '_blank', rel: 'noopener noreferrer' }, 'Audit report (HTML)');
  const box = el('p', { class: 'report' });
  if (!token()) {
    box.append(link);
    return box;
  }
  const open = el('button', { type: 'button', id: 'report-open' }, 'Open the audit report (HTML)');
  open.addEventListener('click', async () => {
    box.querySelector(':scope > .error[role=alert]')?.remove();
    const tab = window.open('', '_blank');
    open.disabled = true;
    try {
      const blob = await fetchDocument(REPORT);
      const url = URL.createObjectURL(blob);
      if (tab) tab.location.href = url; else window.open(url, '_blank');
      window.setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      tab?.close();
      showError(box, 'Opening the report', error);
    } finally {
      open.disabled = false;
    }
  });
  box.append(open, el('span', { class: 'muted' }, ' (the API needs a token, which a plain link cannot carry)'));
  return box;
}

export async function renderPosture(root: HTMLElement): Promise<() => void> {
  const p = await api<Posture>('/api/v1/posture');
  const blast = p.blast_radius.slice(0, BLAST_ROWS);
  root.append(el('section', { class: 'posture-view' },
    el('h2', {}, 'Posture'),
    el('p', { class: 'muted' }, `Over the calls from ${fmtTime(p.since)} to ${fmtTime(p.until)}.`),
    reportLinks(),
    el('h3', {}, 'Findings'),
    p.findings.length
      ? el('table', { class: 'list findings', id: 'posture-findings' },
        el('tr', {}, ...['rank', 'severity', 'kind', 'subject', 'explanation'].map((h) => el('th', {}, h))),
        ...p.findings.map(findingRow))
      : el('p', { class: 'muted' }, 'No findings.'),
    el('h3', {}, 'Blast radius'),
    kv(Object.entries(p.summary ?? {}).map(([k, v]) => [k.replace(/_/g, ' '), summaryValue(v, k)] as [string, string])),
    blast.length
      ? el('table', { class: 'list', id: 'posture-blast' },
        el('tr', {}, ...['workload', 'default-allow', 'observed', 'least privilege', 'cut', 'sensitive reached'].map((h) => el('th', {}, h))),
        ...blast.map(blastRow))
      : el('p', { class: 'muted' }, 'No caller in the period.'),
    p.blast_radius.length > BLAST_ROWS
      ? el('p', { class: 'muted' }, `The ${BLAST_ROWS} largest least-privilege reaches of ${p.blast_radius.length} callers; the report has them all.`)
      : null));
  return () => {};
}
