// A plain-text table of a bench's rows: our figure, each peer's, and ours/peer.
import type { Row } from './types.ts';

const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '—' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const ratio = (ours: number | null, peer: number | null | undefined) => (ours && peer ? `${(ours / peer).toFixed(2)}×` : '—');

export function table(rows: Row[], peers: string[]): string {
  const head = ['case', 'unit', 'ours', ...peers.flatMap((p) => [p, `ours/${p}`])];
  const body = rows.map((r) => [r.case, r.unit, fmt(r.ours), ...peers.flatMap((p) => [fmt(r.peers[p]), ratio(r.ours, r.peers[p])])]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** The same table in Markdown (bench/README.md). */
export function markdown(rows: Row[], peers: string[]): string {
  const head = ['case', 'unit', 'ours', ...peers.flatMap((p) => [p, `ours/${p}`])];
  const body = rows.map((r) => [r.case, r.unit, fmt(r.ours), ...peers.flatMap((p) => [fmt(r.peers[p]), ratio(r.ours, r.peers[p])])]);
  return [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
}
