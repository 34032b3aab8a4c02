// What a canvas draws, independent of cytoscape: nodes and edges with the text the
// labels show. Built from the API's service graph or namespace graph.
import type { Graph, GraphEdge, NamespaceGraph } from '../api';
import { pct } from '../dom';

export interface DrawNode { id: string; label: string; kind: 'service' | 'namespace'; classes: string[]; size?: number }
export interface DrawEdge { id: string; source: string; target: string; label: string; classes: string[] }
export interface Drawing { nodes: DrawNode[]; edges: DrawEdge[] }

export const NS_PREFIX = 'ns:';
export const edgeId = (source: string, target: string) => `e:${source}\u0000${target}`;

interface EdgeNumbers { calls: number; errors: number; first_seen: string; last_seen: string; mtls_ratio: number | null }

/** `12/s · 2.0% err · 100.0% mTLS`: the average rate over the edge's life. */
export function edgeLabel(e: EdgeNumbers): string {
  const seconds = Math.max(1, (Date.parse(e.last_seen) - Date.parse(e.first_seen)) / 1000);
  const rate = e.calls / seconds;
  const parts = [`${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)}/s`];
  parts.push(`${e.calls > 0 ? ((e.errors / e.calls) * 100).toFixed(1) : '0.0'}% err`);
  if (e.mtls_ratio !== null) parts.push(`${pct(e.mtls_ratio)} mTLS`);
  return parts.join(' · ');
}

function edgeClasses(e: { status: string; mtls_ratio: number | null }): string[] {
  return [e.status, ...(e.mtls_ratio !== null && e.mtls_ratio < 1 ? ['plaintext'] : [])];
}

export function serviceDrawing(g: Graph): Drawing {
  const worst = new Map<string, string>();
  const rank = (s: string) => (s === 'alerted' ? 2 : s === 'new' ? 1 : 0);
  const mark = (key: string, status: string) => { if (rank(status) > rank(worst.get(key) ?? 'baseline')) worst.set(key, status); };
  for (const e of g.edges) { mark(e.source, e.status); mark(e.destination, e.status); }
  const ids = new Set(g.nodes.map((n) => n.id));
  return {
    nodes: g.nodes.map((n) => ({ id: n.id, label: n.service, kind: 'service', classes: ['service', ...(worst.has(n.id) ? [worst.get(n.id)!] : [])] })),
    edges: g.edges.filter((e) => ids.has(e.source) && ids.has(e.destination)).map((e: GraphEdge) => ({
      id: edgeId(e.source, e.destination), source: e.source, target: e.destination, label: edgeLabel(e), classes: edgeClasses(e),
    })),
  };
}

export const namespaceLabel = (ns: string) => ns || '(no namespace)';

export function namespaceDrawing(g: NamespaceGraph): Drawing {
  return {
    nodes: g.nodes.map((n) => ({
      id: NS_PREFIX + n.id, label: `${namespaceLabel(n.id)} (${n.services})`, kind: 'namespace',
      classes: ['namespace', ...(n.status === 'baseline' ? [] : [n.status])],
      size: Math.round(40 + Math.min(80, Math.sqrt(n.services) * 6)),
    })),
    edges: g.edges.map((e) => ({
      id: edgeId(NS_PREFIX + e.source, NS_PREFIX + e.destination), source: NS_PREFIX + e.source, target: NS_PREFIX + e.destination,
      label: `${e.edges} edge${e.edges === 1 ? '' : 's'} · ${edgeLabel(e)}`, classes: edgeClasses(e),
    })),
  };
}
