// DOM helpers. Telemetry is attacker-controlled: text only goes in via textContent,
// never innerHTML.
type Child = Node | string | number | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node: Element): void {
  node.replaceChildren();
}

export function fmtTime(value: string | null | undefined): string {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function fmtNum(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

export function pct(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  return `${(value * 100).toFixed(1)}%`;
}

export function kv(rows: [string, Child][]): HTMLTableElement {
  return el('table', { class: 'kv' }, ...rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))));
}

/** `#/alerts/<id>` with the id URI-encoded so attacker text cannot change the route. */
export function hashLink(parts: string[], text: string): HTMLAnchorElement {
  return el('a', { href: '#/' + parts.map(encodeURIComponent).join('/') }, text);
}

/** A visible, announced error next to what failed (ack, accept, end learning, loads). */
export function showError(where: Element, what: string, error: unknown): void {
  where.querySelector(':scope > .error[role=alert]')?.remove();
  const message = error instanceof Error ? error.message : String(error);
  where.append(el('p', { class: 'error', role: 'alert' }, `${what} failed: ${message}`));
}
