// REST/SSE client with the session token (asked once on a 401).
import { el } from './dom';

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

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const headers = new Headers(init.headers);
    const current = token();
    if (current) headers.set('Authorization', `Bearer ${current}`);
    // The server refuses state-changing requests without it: a page on another site
    // cannot send a custom header here (CORS preflight, never granted), so it shows the
    // request is the dashboard's own and not a forged form post (CSRF).
    headers.set('X-Eastwest-Request', '1');
    if (init.body) headers.set('Content-Type', 'application/json');
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401) {
      await askToken();
      continue;
    }
    const text = await response.text();
    let body: unknown = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = null; }
    if (!response.ok) {
      const message = (body as { error?: string } | null)?.error ?? `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message);
    }
    return body as T;
  }
  throw new ApiError(401, 'unauthorized');
}

export function streamUrl(): string {
  const current = token();
  return '/api/v1/alerts/stream' + (current ? `?access_token=${encodeURIComponent(current)}` : '');
}

export interface Workload { service: string; namespace: string; principal?: string | null }
export interface Alert {
  id: string; kind: string; severity: string; score: number;
  source: Workload; destination: Workload | null; method: string | null; route: string | null;
  entry: { service: string; route: string } | null;
  first_seen: string; last_seen: string; count: number; trace_ids: string[];
  incident_id: string | null; summary: string; evidence: Record<string, unknown>; state: string;
}
export interface Incident {
  id: string; source: Workload; severity: string; score: number; first_seen: string; last_seen: string;
  alert_ids: string[]; path: string[]; suppressed: number; summary: string;
}
export interface GraphNode { id: string; service: string; namespace: string }
export interface GraphEdge {
  source: string; destination: string; calls: number; errors: number; first_seen: string; last_seen: string;
  mtls_ratio: number | null; status: string;
}
export interface Endpoint { method: string; route: string; calls: number; errors: number; first_seen: string; last_seen: string }
export interface EdgeDetail extends GraphEdge { endpoints: Endpoint[]; trace_ids: string[]; alerts: Alert[] }
export interface ServiceDetail { service: string; calls: GraphEdge[]; callers: GraphEdge[]; blast_radius: string[] }
export interface Baseline {
  state: string; learning_started: string | null; learning_ends: string | null; learned_seconds: number;
  learning_period_seconds: number; watermark: string | null; counts: Record<string, number>;
  rollout_changes: { workload: string; version: string; first_seen: string; summary: string }[];
}

export const KINDS = ['new_edge', 'new_endpoint', 'sensitive_endpoint', 'fan_out', 'rate_spike',
  'context_anomaly', 'probing', 'plaintext', 'identity_mismatch', 'alert_storm'];
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
export const STATES = ['open', 'acked', 'accepted'];

export function workloadKey(w: Workload | null | undefined): string {
  return w ? `${w.service}.${w.namespace}` : '—';
}
