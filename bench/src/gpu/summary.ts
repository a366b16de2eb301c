// The short table of a GPU run, from results/gpu-matmul.json and results/gpu-step.json: square matmuls and the step's
// matmul shapes as a share of cuBLAS f32, each step in ms next to PyTorch's (f32 and bf16) with the time ratio, and the
// profile of each step (dispatches, encode µs a dispatch, matmul share). Printed last by `pnpm bench` on a GPU and by
// scripts/gpu/session.sh; written as Markdown to results/gpu-summary.md for bench/README.md.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface SavedRow {
  case: string;
  ours: number | null;
  peers: Record<string, number | null>;
  notes?: { ms?: Record<string, number | null>; default?: string };
}
interface Saved {
  date: string;
  machine: { adapter: { vendor: string; description: string; device: string } };
  gpu?: { nvidiaSmi: { name: string; driver: string } | null };
  info: Record<string, unknown>;
  rows: SavedRow[];
}
interface StepCaseInfo {
  name: string;
  extraFlags?: string[];
  profile?: { step: { dispatches: number; encodeUsPerDispatch: number; matmulShare: number; matmulDispatches: number; gpuMs: number } | null };
  ours?: { trainPeakBytes?: number | null; error?: string };
  torch?: { modes?: Record<string, { step_peak_bytes: number | null }>; skipped?: string; impl?: string };
}

const load = (dir: string, name: string): Saved | null => (existsSync(join(dir, `${name}.json`)) ? JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) : null);
const f = (v: number | null | undefined, d = 1) => (v === null || v === undefined ? '—' : v.toFixed(d));
const pct = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${((100 * a) / b).toFixed(0)}%` : '—');
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : '—');
const gib = (b: number | null | undefined) => (b ? (b / 2 ** 30).toFixed(2) : '—');

/** Plain-text and Markdown tables from the same cells. */
function tables(head: string[], body: string[][]): { text: string; md: string } {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const text = [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)].join('\n');
  const md = [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i ? '---:' : '---')).join(' | ')} |`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  return { text, md };
}

/** The summary of DIR's GPU results (text to print, Markdown written to DIR/gpu-summary.md when there is any). */
export function gpuSummary(dir: string): { text: string; markdown: string } {
  const mm = load(dir, 'gpu-matmul');
  const st = load(dir, 'gpu-step');
  if (!mm && !st) return { text: `no GPU results in ${dir} (gpu-matmul.json, gpu-step.json)`, markdown: '' };
  const any = (mm ?? st)!;
  const smi = any.gpu?.nvidiaSmi;
  const a = any.machine.adapter;
  const header = `GPU: ${smi ? `${smi.name}, driver ${smi.driver}` : 'nvidia-smi not found'}; adapter ${a.vendor} / ${a.description || a.device}; ${any.date.slice(0, 16).replace('T', ' ')} UTC`;
  const text: string[] = [`== GPU summary — ${header}`];
  const md: string[] = [`GPU summary — ${header}`, ''];

  if (mm) {
    const kernel = String(mm.info.defaultKernel ?? 'ours');
    const sq = mm.rows.filter((r) => /^\d+² /.test(r.case));
    const t = tables(
      ['matmul (TFLOP/s)', `ours f32 (${kernel})`, 'subgroup', 'cuBLAS f32', 'ours/cuBLAS', 'ours f16', 'torch f16', 'ours f16/torch f16', 'torch bf16'],
      sq.map((r) => [r.case, f(r.ours, 2), f(r.peers.subgroup, 2), f(r.peers['torch-f32'], 2), pct(r.ours, r.peers['torch-f32']),
        f(r.peers['ours-f16'], 1), f(r.peers['torch-f16'], 1), pct(r.peers['ours-f16'], r.peers['torch-f16']), f(r.peers['torch-bf16'], 1)]),
    );
    text.push(t.text);
    md.push(t.md, '');
    const shapes = mm.rows.filter((r) => !/^\d+² /.test(r.case) && r.ours && r.peers['torch-f32']);
    if (shapes.length) {
      const share = shapes.map((r) => ({ name: r.case, s: r.ours! / r.peers['torch-f32']! })).sort((x, y) => x.s - y.s);
      const half = shapes.filter((r) => r.peers['ours-f16'] && r.peers['torch-f16']).map((r) => r.peers['ours-f16']! / r.peers['torch-f16']!).sort((x, y) => x - y);
      const line = `${String(mm.info.step ?? 'the step')}: ${shapes.length} matmul shapes at ${(100 * share[0]!.s).toFixed(0)}–` +
        `${(100 * share.at(-1)!.s).toFixed(0)}% of cuBLAS f32 (median ${(100 * share[Math.floor(share.length / 2)]!.s).toFixed(0)}%); slowest: ${share[0]!.name}` +
        (half.length ? `; f16: ${(100 * half[0]!).toFixed(0)}–${(100 * half.at(-1)!).toFixed(0)}% of torch f16 (median ${(100 * half[Math.floor(half.length / 2)]!).toFixed(0)}%)` : '');
      text.push(line);
      md.push(line, '');
    } else {
      const line = `${String(mm.info.step ?? 'the step')}: no cuBLAS figures to compare the ${mm.rows.length - sq.length} step shapes with`;
      text.push(line);
      md.push(line, '');
    }
  }

  if (st) {
    const body = st.rows.map((r) => {
      const ms = r.notes?.ms ?? {};
      return [r.case, f(ms.ours), f(ms['torch-f32']), ratio(ms.ours, ms['torch-f32']), f(ms['torch-bf16']), ratio(ms.ours, ms['torch-bf16'])];
    });
    const t = tables(['step (ms, median)', 'ours', 'torch f32', 'ours/torch f32', 'torch bf16', 'ours/torch bf16'], body);
    text.push('', t.text);
    md.push(t.md, '');
    for (const c of (st.info.cases ?? []) as StepCaseInfo[]) {
      const p = c.profile?.step;
      const peak = `peak ours ${gib(c.ours?.trainPeakBytes)} GiB, torch f32 ${gib(c.torch?.modes?.f32?.step_peak_bytes)} GiB`;
      const line = p
        ? `${c.name}: ${p.dispatches} dispatches a step, encode ${p.encodeUsPerDispatch.toFixed(1)} µs a dispatch, matmul ${(100 * p.matmulShare).toFixed(0)}% of ${p.gpuMs.toFixed(1)} ms GPU (${p.matmulDispatches} dispatches); ${peak}`
        : `${c.name}: no profile (${c.ours?.error ?? 'not run'})`;
      text.push(line);
      md.push(`- ${line}`);
      if (c.torch?.skipped) text.push(`  PyTorch peer skipped: ${c.torch.skipped}`);
    }
    const flags = ((st.info.cases ?? []) as StepCaseInfo[])[0]?.extraFlags ?? [];
    if (flags.length) {
      text.push(`(ours with ${flags.join(' ')})`);
      md.push('', `Ours with \`${flags.join(' ')}\`.`);
    }
  }
  const markdown = md.join('\n') + '\n';
  writeFileSync(join(dir, 'gpu-summary.md'), markdown);
  return { text: text.join('\n'), markdown };
}
