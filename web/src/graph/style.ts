// Cytoscape styles from the theme's CSS variables (read when a canvas is made; a theme
// switch re-renders the view). Labels are drawn on canvas as text, never parsed as HTML.
import type { StylesheetJson } from 'cytoscape';

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export function graphStyle(): StylesheetJson {
  const fg = cssVar('--fg'), muted = cssVar('--muted'), edge = cssVar('--edge');
  const warn = cssVar('--warn'), bad = cssVar('--bad'), accent = cssVar('--accent');
  return [
    { selector: 'node', style: { label: 'data(label)', color: fg, 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 3, 'background-color': cssVar('--node'), width: 22, height: 22, 'min-zoomed-font-size': 7 } },
    { selector: 'node.namespace', style: { shape: 'round-rectangle', 'background-color': cssVar('--ns'), 'border-color': muted, 'border-width': 1, width: 'data(size)', height: 'data(size)', 'font-size': 13, 'text-valign': 'center', 'text-halign': 'center', color: fg } },
    { selector: 'node.new', style: { 'border-width': 3, 'border-color': warn } },
    { selector: 'node.alerted', style: { 'border-width': 4, 'border-color': bad } },
    { selector: 'node.focus', style: { 'background-color': accent, width: 30, height: 30 } },
    { selector: 'edge', style: { width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'line-color': edge, 'target-arrow-color': edge, label: 'data(label)', 'font-size': 9, color: muted, 'text-rotation': 'autorotate', 'text-background-color': cssVar('--panel'), 'text-background-opacity': 0.8, 'text-background-padding': '1px', 'min-zoomed-font-size': 9 } },
    { selector: 'edge.new', style: { 'line-color': warn, 'target-arrow-color': warn, width: 3 } },
    { selector: 'edge.alerted', style: { 'line-color': bad, 'target-arrow-color': bad, width: 4 } },
    { selector: 'edge.plaintext', style: { 'line-style': 'dashed' } },
    { selector: '.faded', style: { opacity: 0.2 } },
    { selector: 'node.blast', style: { 'background-color': warn, 'border-width': 3, 'border-color': bad } },
    { selector: 'node.path', style: { 'background-color': bad, 'border-width': 3, 'border-color': fg } },
    { selector: 'edge.path', style: { 'line-color': bad, 'target-arrow-color': bad, width: 6 } },
    { selector: ':selected', style: { 'border-width': 3, 'border-color': accent } },
  ];
}
