// Learning progress, counts, "end learning now" (its failure shown), rollout changes.
import { api, Baseline, post } from '../api';
import { clear, el, fmtNum, fmtTime, kv, pct, showError } from '../dom';

/** What "learning started" says: the time, or why there is none. */
function started(b: Baseline): string {
  if (b.learning_started) return fmtTime(b.learning_started);
  return b.state === 'learning' ? 'at the first call (none yet)' : 'not recorded (learning was ended before any call)';
}

export async function renderBaseline(root: HTMLElement): Promise<() => void> {
  const section = el('section', { class: 'baseline' });
  root.append(section);
  const paint = (b: Baseline) => {
    clear(section);
    const ratio = b.state === 'detecting' ? 1
      : b.learning_period_seconds > 0 ? Math.min(1, b.learned_seconds / b.learning_period_seconds) : 1;
    const bar = el('progress', { id: 'learning-progress', max: '1', value: String(ratio) });
    const end = el('button', { type: 'button', id: 'end-learning' }, 'End learning now');
    end.disabled = b.state !== 'learning';
    end.addEventListener('click', async () => {
      if (!confirm('End learning and start detecting now?')) return;
      end.disabled = true;
      try { paint(await post<Baseline>('/api/v1/baseline/detect')); } catch (e) { end.disabled = false; showError(section, 'Ending learning', e); }
    });
    const progress = b.state === 'detecting'
      ? `learning ended; ${fmtNum(b.learned_seconds / 60, 1)} minutes of event time learned`
      : `${pct(ratio)} — ${fmtNum(b.learned_seconds / 60, 1)} of ${fmtNum(b.learning_period_seconds / 60, 1)} minutes of event time learned`;
    section.append(el('h2', {}, 'Baseline'),
      el('p', {}, 'State: ', el('strong', { id: 'baseline-state' }, b.state)),
      el('div', { class: 'progress' }, bar, ` ${progress}`),
      end,
      kv([['learning started', el('span', { id: 'learning-started' }, started(b))],
        [b.state === 'detecting' ? 'learning ended' : 'learning ends', fmtTime(b.learning_ends)],
        ['watermark', fmtTime(b.watermark)],
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
