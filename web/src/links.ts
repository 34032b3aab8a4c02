// Links out of the dashboard: trace ids to the operator's trace UI, ATT&CK techniques to
// their pages. Trace ids are attacker-controlled text: the id is URI-encoded whole into
// the configured template, and only an http(s) template makes links at all (the server
// checks this at load too), so no id can become a `javascript:` URL or leave its place.
import { Alert, Technique, ui } from './api';
import { el } from './dom';

const PLACEHOLDER = '{trace_id}';

export function traceUrl(template: string | null | undefined, traceId: string): string | null {
  if (!template || !traceId || !/^https?:\/\/[^/]/i.test(template) || !template.includes(PLACEHOLDER)) return null;
  return template.split(PLACEHOLDER).join(encodeURIComponent(traceId));
}

/** A list of trace ids, each a link when a template is configured. */
export async function traceList(ids: string[]): Promise<HTMLUListElement> {
  const { trace_url_template: template } = await ui();
  return el('ul', { class: 'mono traces' }, ...ids.map((id) => {
    const href = traceUrl(template, id);
    return el('li', {}, href
      ? el('a', { href, class: 'trace-link', target: '_blank', rel: 'noopener noreferrer' }, id)
      : id);
  }));
}

export function techniqueTag(t: Technique): HTMLAnchorElement {
  // `t.url` is eastwest's own (attack.mitre.org), built from its constant table.
  return el('a', { class: 'attack-tag', href: t.url, target: '_blank', rel: 'noopener noreferrer', title: `${t.name} (${t.tactic})` }, t.id);
}

export function attackTags(alert: Alert): HTMLSpanElement {
  return el('span', { class: 'attack' }, ...(alert.attack ?? []).map(techniqueTag));
}
