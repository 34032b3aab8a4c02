// One SSE connection shared by every view; listeners get new/updated alerts and incidents.
import { Alert, Incident, streamUrl } from './api';

type Listener = (kind: 'alert' | 'incident', value: Alert | Incident) => void;
const listeners = new Set<Listener>();
let source: EventSource | null = null;

export function onLive(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function connectLive(indicator: HTMLElement): void {
  source?.close();
  source = new EventSource(streamUrl());
  source.addEventListener('open', () => { indicator.textContent = 'live'; indicator.className = 'live on'; });
  source.addEventListener('error', () => { indicator.textContent = 'reconnecting'; indicator.className = 'live'; });
  for (const kind of ['alert', 'incident'] as const) {
    source.addEventListener(kind, (event) => {
      let value: Alert | Incident;
      try { value = JSON.parse((event as MessageEvent).data); } catch { return; }
      for (const listener of listeners) listener(kind, value);
    });
  }
}
