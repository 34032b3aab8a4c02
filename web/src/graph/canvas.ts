// A cytoscape canvas that updates in place: a refresh adds, removes and restyles what
// changed and keeps every position, so the picture does not jump while the operator
// reads it. New nodes start next to their neighbours and settle with the known ones
// locked; only a first draw (or a view that is mostly new) lays everything out.
// Beside the canvas, a DOM list of what is drawn: keyboard and screen-reader access to
// every node and edge (the canvas has none), and what the browser tests read.
import cytoscape, { Core, ElementDefinition, NodeSingular, Position } from 'cytoscape';
import { el } from '../dom';
import { graphStyle } from './style';
import { Drawing, DrawEdge, DrawNode } from './model';

export interface CanvasHandlers {
  node?: (id: string, kind: DrawNode['kind']) => void;
  edge?: (source: string, target: string) => void;
}

const FULL_LAYOUT_SHARE = 0.5;
const COSE_MAX_NODES = 400;
const MAX_FIT_ZOOM = 1.4;
/** Above this many edges their labels show on hover only (the list has them all). */
const EDGE_LABELS_MAX = 40;

export class GraphCanvas {
  readonly cy: Core;
  readonly index: HTMLDetailsElement;
  private overlay = new Map<string, Set<string>>();
  private drawing: Drawing = { nodes: [], edges: [] };
  private edgeLabels = true;

  constructor(container: HTMLElement, private handlers: CanvasHandlers = {}) {
    this.cy = cytoscape({ container, style: graphStyle(), elements: [], wheelSensitivity: 0.3, minZoom: 0.05, maxZoom: 4 });
    this.cy.on('tap', 'node', (evt) => this.handlers.node?.(evt.target.id(), evt.target.data('kind')));
    this.cy.on('tap', 'edge', (evt) => this.handlers.edge?.(evt.target.data('source'), evt.target.data('target')));
    this.cy.on('mouseover', 'edge', (evt) => evt.target.data('label', evt.target.data('full')));
    this.cy.on('mouseout', 'edge', (evt) => { if (!this.edgeLabels) evt.target.data('label', ''); });
    this.index = el('details', { class: 'graph-index' });
  }

  destroy(): void { this.cy.destroy(); }

  /** Adds, removes and restyles what changed; returns how many nodes were new. */
  update(next: Drawing): number {
    const cy = this.cy;
    const nextIds = new Set([...next.nodes.map((n) => n.id), ...next.edges.map((e) => e.id)]);
    const hadNodes = cy.nodes().length;
    this.edgeLabels = next.edges.length <= EDGE_LABELS_MAX;
    const shown = (e: DrawEdge) => (this.edgeLabels ? e.label : '');
    cy.batch(() => {
      cy.elements().filter((e) => !nextIds.has(e.id())).remove();
      for (const n of next.nodes) {
        const existing = cy.getElementById(n.id);
        if (existing.nonempty()) {
          existing.data({ label: n.label, size: n.size });
          existing.classes(this.classes(n.id, n.classes));
        }
      }
      for (const e of next.edges) {
        const existing = cy.getElementById(e.id);
        if (existing.nonempty()) {
          existing.data({ label: shown(e), full: e.label });
          existing.classes(this.classes(e.id, e.classes));
        }
      }
    });
    const fresh = next.nodes.filter((n) => cy.getElementById(n.id).empty());
    const freshEdges = next.edges.filter((e) => cy.getElementById(e.id).empty());
    const defs: ElementDefinition[] = [
      ...fresh.map((n) => ({ group: 'nodes' as const, data: { id: n.id, label: n.label, kind: n.kind, size: n.size }, classes: this.classes(n.id, n.classes) })),
      ...freshEdges.map((e) => ({ group: 'edges' as const, data: { id: e.id, source: e.source, target: e.target, label: shown(e), full: e.label }, classes: this.classes(e.id, e.classes) })),
    ];
    if (defs.length) cy.add(defs);
    this.drawing = next;
    if (fresh.length) this.place(fresh.map((n) => n.id), hadNodes);
    this.renderIndex();
    return fresh.length;
  }

  /** Overlay classes (path, focus, faded…) that survive updates. */
  mark(id: string, ...classes: string[]): void {
    const set = this.overlay.get(id) ?? new Set<string>();
    for (const c of classes) set.add(c);
    this.overlay.set(id, set);
    this.cy.getElementById(id).addClass(classes.join(' '));
    this.renderIndex();
  }

  clearMarks(...classes: string[]): void {
    for (const set of this.overlay.values()) for (const c of classes) set.delete(c);
    this.cy.elements().removeClass(classes.join(' '));
    this.renderIndex();
  }

  /** Fits the drawing, without blowing a handful of nodes up to fill the screen. */
  fit(): void {
    this.cy.fit(undefined, 30);
    if (this.cy.zoom() > MAX_FIT_ZOOM) { this.cy.zoom(MAX_FIT_ZOOM); this.cy.center(); }
  }

  center(id: string): void {
    const node = this.cy.getElementById(id);
    if (node.nonempty()) this.cy.animate({ center: { eles: node }, zoom: Math.max(this.cy.zoom(), 0.8) }, { duration: 200 });
  }

  private classes(id: string, base: string[]): string {
    return [...base, ...(this.overlay.get(id) ?? [])].join(' ');
  }

  private place(freshIds: string[], hadNodes: number): void {
    const cy = this.cy;
    const freshSet = new Set(freshIds);
    const fresh = cy.nodes().filter((n) => freshSet.has(n.id()));
    const total = cy.nodes().length;
    const big = total > COSE_MAX_NODES;
    if (hadNodes === 0 || freshIds.length > total * FULL_LAYOUT_SHARE) {
      cy.layout(big
        ? { name: 'concentric', animate: false, padding: 30, concentric: (n: NodeSingular) => n.degree(false), levelWidth: () => 2 }
        : { name: 'cose', animate: false, padding: 30, nodeDimensionsIncludeLabels: true, randomize: true, numIter: 1500 }).run();
      this.fit();
      return;
    }
    // Start each new node beside the known nodes it connects to, then let only the new
    // ones move.
    fresh.forEach((n) => {
      const known = n.neighborhood().nodes().filter((m) => !freshSet.has(m.id()));
      const at: Position = known.nonempty()
        ? { x: avg(known.map((m) => (m as NodeSingular).position().x)), y: avg(known.map((m) => (m as NodeSingular).position().y)) }
        : { x: cy.extent().x2 - 40, y: cy.extent().y1 + 40 };
      n.position({ x: at.x + (Math.random() - 0.5) * 60, y: at.y + (Math.random() - 0.5) * 60 });
    });
    if (big) return;
    const locked = cy.nodes().filter((n) => !freshSet.has(n.id()));
    locked.lock();
    cy.layout({ name: 'cose', animate: false, randomize: false, fit: false, numIter: 300 }).run();
    locked.unlock();
  }

  private renderIndex(): void {
    const { nodes, edges } = this.drawing;
    const label = new Map(nodes.map((n) => [n.id, n.label]));
    const li = (id: string, base: string[], attrs: Record<string, string>, text: string, onClick: () => void) => {
      const button = el('button', { type: 'button' }, text);
      button.addEventListener('click', onClick);
      return el('li', { ...attrs, class: this.classes(id, base) }, button);
    };
    this.index.replaceChildren(
      el('summary', {}, `In view: ${nodes.length} ${nodes[0]?.kind === 'namespace' ? 'namespaces' : 'services'}, ${edges.length} edges (list)`),
      el('ul', { class: 'graph-nodes' }, ...nodes.map((n) =>
        li(n.id, n.classes, { 'data-id': n.id }, n.label, () => { this.cy.getElementById(n.id).select(); this.handlers.node?.(n.id, n.kind); }))),
      el('ul', { class: 'graph-edges' }, ...edges.map((e: DrawEdge) =>
        li(e.id, e.classes, { 'data-source': e.source, 'data-target': e.target },
          `${label.get(e.source) ?? e.source} → ${label.get(e.target) ?? e.target}: ${e.label}`,
          () => this.handlers.edge?.(e.source, e.target)))),
    );
  }
}

function avg(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}
