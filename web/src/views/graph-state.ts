// The graph view's state lives in the URL (`#/graph?ns=…&focus=…&hops=…&status=…&mtls=…`),
// so every view is a link: back/forward work and an alert can point at its neighbourhood.
export interface GraphState { ns?: string | null; focus?: string | null; hops?: number; changed?: boolean; mtls?: string | null; protocol?: string | null }

/** Services one cut of a namespace or of the whole mesh shows at most. */
export const VIEW_LIMIT = 150;

export function readState(params: URLSearchParams): GraphState {
  const hops = Number(params.get('hops') ?? '1');
  return {
    ns: params.get('ns'), focus: params.get('focus'),
    hops: [1, 2, 3].includes(hops) ? hops : 1,
    changed: params.get('status') === 'new,alerted', mtls: params.get('mtls'), protocol: params.get('protocol'),
  };
}

export function graphHash(state: GraphState): string {
  const q = new URLSearchParams();
  if (state.ns !== null && state.ns !== undefined) q.set('ns', state.ns);
  if (state.focus) q.set('focus', state.focus);
  if (state.focus && state.hops && state.hops !== 1) q.set('hops', String(state.hops));
  if (state.changed) q.set('status', 'new,alerted');
  if (state.mtls) q.set('mtls', state.mtls);
  if (state.protocol) q.set('protocol', state.protocol);
  const query = q.toString();
  return '#/graph' + (query ? `?${query}` : '');
}

/** The API request for a state: namespaces when nothing narrows the mesh. */
export function dataUrl(state: GraphState): { url: string; level: 'namespaces' | 'services' } {
  if (state.ns === null || state.ns === undefined) {
    if (!state.focus && !state.changed && !state.mtls && !state.protocol) return { url: '/api/v1/graph/namespaces', level: 'namespaces' };
  }
  const q = new URLSearchParams({ limit: String(VIEW_LIMIT) });
  if (state.ns !== null && state.ns !== undefined) q.set('namespace', state.ns);
  if (state.focus) { q.set('focus', state.focus); q.set('hops', String(state.hops ?? 1)); }
  if (state.changed) q.set('status', 'new,alerted');
  if (state.mtls) q.set('mtls', state.mtls);
  if (state.protocol) q.set('protocol', state.protocol);
  return { url: `/api/v1/graph?${q}`, level: 'services' };
}
