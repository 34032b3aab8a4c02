// REST/SSE client with the session token (asked once on a 401). The types are generated
// from the OpenAPI document the server serves (`npm run gen:api`), never copied by hand.
import { el } from './dom';
import type { components } from './generated/openapi';

type Schemas = components['schemas'];
export type Workload = Schemas['Workload'];
export type Alert = Schemas['Alert'];
export type AlertPage = Schemas['AlertPage'];
export type Technique = Schemas['Technique'];
export type Incident = Schemas['Incident'];
export type GraphNode = Schemas['GraphNode'];
export type GraphEdge = Schemas['GraphEdge'];
export type Graph = Schemas['Graph'];
export type NamespaceGraph = Schemas['NamespaceGraph'];
export type EdgeDetail = Schemas['EdgeDetail'];
export type ServiceDetail = Schemas['ServiceDetail'];
export type Baseline = Schemas['Baseline'];
export type UiConfig = Schemas['UiConfig'];
export type Posture = Schemas['Posture'];
export type PostureFinding = Schemas['PostureFinding'];
export type BlastRadius = Schemas['BlastRadius'];
export type BacktestReport = Schemas['BacktestReport'];
export type PolicyEdgeRoute = Schemas['PolicyEdgeRoute'];
export interface IncidentDetail { incident: Incident; alerts: Alert[] }

// Complete by type: a kind or severity added to the OpenAPI document fails `tsc` until
// it is listed here too.
const KIND_NAMES: Record<Alert['kind'], true> = {
  new_edge: true, new_endpoint: true, sensitive_endpoint: true, fan_out: true, rate_spike: true,
  context_anomaly: true, probing: true, plaintext: true, identity_mismatch: true,
  new_workload: true, volume_spike: true, alert_storm: true,
};
export const KINDS = Object.keys(KIND_NAMES) as Alert['kind'][];
export const SEVERITIES: Alert['severity'][] = ['info', 'low', 'medium', 'high', 'critical'];
export const STATES: Alert['state'][] = ['open', 'acked', 'accepted'];

const TOKEN_KEY = 'eastwest.token';
let tokenPrompt: Promise<void> | null = null;

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

function askToken(): Promise<void> {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const input = el('input', { type: 'password', id: 'token-input', autocomplete: 'off', placeholder: 'API token' });
    const form = el('form', { id: 'token-form', class: 'token-form' },
      el('label', { for: 'token-input' }, 'This eastwest API needs a token:'), input,
      el('button', { type: 'submit' }, 'Use token'));
    const overlay = el('div', { class: 'overlay' }, form);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      overlay.remove();
      tokenPrompt = null;
      resolve();
    });
    document.body.append(overlay);
    input.focus();
  });
  return tokenPrompt;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

async function send(path: string, init: RequestInit): Promise<Response> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = new Headers(init.headers);
    const current = token();
    if (current) headers.set('Authorization', `Bearer ${current}`);
    // The server refuses state-changing requests without it: a page on another site
    // cannot send a custom header here (CORS preflight, never granted), so it shows the
    // request is the dashboard's own and not a forged form post (CSRF).
    headers.set('X-Eastwest-Request', '1');
    if (init.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401) {
      await askToken();
      continue;
    }
    return response;
  }
  throw new ApiError(401, 'unauthorized');
}

async function body<T>(response: Response): Promise<T> {
  const text = await response.text();
  let parsed: unknown = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!response.ok) {
    const message = (parsed as { error?: string } | null)?.error ?? `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return parsed as T;
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  return body<T>(await send(path, init));
}

/** A GET answered with a document, not JSON (policy YAML, the HTML report); errors are the server's JSON message. */
export async function fetchDocument(path: string): Promise<Blob> {
  const response = await send(path, { cache: 'no-store' });
  if (!response.ok) await body<never>(response);
  return response.blob();
}

/** POST of a text body (e.g. policy YAML) with its content type, answered with JSON. */
export function postText<T>(path: string, text: string, contentType: string): Promise<T> {
  return api<T>(path, { method: 'POST', body: text, headers: { 'Content-Type': contentType } });
}

/** POST with the dashboard's header; the error names what failed. */
export function post<T>(path: string): Promise<T> {
  return api<T>(path, { method: 'POST', body: '{}' });
}

/**
 * GET that revalidates with the ETag of the last answer: `null` when nothing changed
 * (304), so a poll of an unchanged graph costs no download and no redraw. The browser
 * cache stays out of it (`no-store`), or it would turn the 304 into a 200.
 */
export async function getIfChanged<T>(path: string, etag: string | null): Promise<{ etag: string | null; value: T } | null> {
  const headers: Record<string, string> = etag ? { 'If-None-Match': etag } : {};
  const response = await send(path, { headers, cache: 'no-store' });
  if (response.status === 304) return null;
  const value = await body<T>(response);
  return { etag: response.headers.get('ETag'), value };
}

let uiConfig: Promise<UiConfig> | null = null;
/** `/api/v1/ui`, read once per page load. */
export function ui(): Promise<UiConfig> {
  uiConfig ??= api<UiConfig>('/api/v1/ui').catch(() => ({ trace_url_template: null }));
  return uiConfig;
}

export function streamUrl(): string {
  const current = token();
  return '/api/v1/alerts/stream' + (current ? `?access_token=${encodeURIComponent(current)}` : '');
}

export function workloadKey(w: Workload | null | undefined): string {
  return w ? (w.namespace ? `${w.service}.${w.namespace}` : w.service) : '—';
}
