// pnpm bench [name ...] [--quick] [--list] [--gpu] [--smoke] [--out DIR] [--step-flags "FLAGS"] [--summary]
// Runs the registered benches (registry.ts), prints a table per bench — our figure, each peer's, and ours/peer — and
// writes bench/results/<name>.json (machine, adapter, load, every figure and its ms). With no names: the lavapipe
// benches on a software adapter, the GPU benches (results/gpu-*.json) on a GPU; --gpu picks the GPU ones anywhere,
// --smoke runs them at tiny sizes (a check on lavapipe). --summary prints the short table of DIR's gpu-*.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, dispose, describePolicy } from '@dawngrad/tensor';
import { BENCHES, GPU_BENCHES } from './registry.ts';
import { machine, describeMachine } from './lib/machine.ts';
import { table, markdown } from './lib/table.ts';
import { nvidiaSmi, repoRoot } from './gpu/env.ts';
import { gpuSummary } from './gpu/summary.ts';

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    gpu: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
    'step-flags': { type: 'string', default: '' },
    summary: { type: 'boolean', default: false },
  },
});
// bench/results in the repository (also from the bundle .gpu/bench.mjs, run from the repository root)
const RESULTS = resolve(flags.out ?? join(repoRoot() ?? resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'bench/results'));
const ALL = [...BENCHES, ...GPU_BENCHES];
if (flags.list) {
  for (const b of ALL) console.log(`${b.name.padEnd(12)} ${b.title}`);
  process.exit(0);
}
if (flags.summary) {
  console.log(gpuSummary(RESULTS).text);
  process.exit(0);
}
const unknown = positionals.filter((p) => !ALL.some((b) => b.name === p));
if (unknown.length) throw new Error(`pnpm bench: no bench named ${unknown.join(', ')} (have: ${ALL.map((b) => b.name).join(', ')})`);

await init();
const m = machine();
const gpuCase = flags.gpu || flags.smoke || m.adapter.adapterClass !== 'cpu';
const selected = positionals.length ? ALL.filter((b) => positionals.includes(b.name)) : gpuCase ? GPU_BENCHES : BENCHES;
console.log(`machine: ${describeMachine(m)}`);
if (!positionals.length) {
  console.log(gpuCase
    ? `the GPU benches${m.adapter.isSoftware ? ` on a software adapter (${flags.smoke ? '--smoke: tiny sizes' : '--gpu'})` : ''}: ${GPU_BENCHES.map((b) => b.name).join(', ')}`
    : `a software adapter: the lavapipe benches (pnpm bench --gpu for the GPU ones)`);
  if (gpuCase) console.log(`kernel policy: ${Object.entries(describePolicy()).map(([k, v]) => `${k} ${v}`).join('; ')}`);
}
const gpu = selected.some((b) => GPU_BENCHES.includes(b)) ? { nvidiaSmi: nvidiaSmi(), policy: describePolicy() } : undefined;
mkdirSync(RESULTS, { recursive: true });
const extraFlags = flags['step-flags'].split(/\s+/).filter(Boolean);
for (const b of selected) {
  console.log(`\n== ${b.title}`);
  const t0 = performance.now();
  const { rows, rowsCpu, info } = await b.run({ quick: flags.quick, smoke: flags.smoke, extraFlags, log: (line) => console.log(`  ${line}`) });
  const mb = { ...m, loadavg: { start: m.loadavg.start, end: Number(os.loadavg()[0]!.toFixed(2)) } };
  const took = `${((performance.now() - t0) / 1000).toFixed(0)} s; load ${mb.loadavg.start}→${mb.loadavg.end} on ${mb.cores} cores`;
  const cpuTitle = `CPU time / ${mb.cores} cores (this process's own work; steadier on a shared machine)`;
  console.log(`\nwall clock (median):\n${table(rows, b.peers)}${rowsCpu ? `\n\n${cpuTitle}:\n${table(rowsCpu, b.peers)}` : ''}\n(${took})`);
  const out = { name: b.name, title: b.title, date: new Date().toISOString(), quick: flags.quick, machine: mb, ...(GPU_BENCHES.includes(b) ? { gpu } : {}), info, peers: b.peers, rows, rowsCpu };
  writeFileSync(resolve(RESULTS, `${b.name}.json`), JSON.stringify(out, null, 2) + '\n');
  const md = `${b.title} — ${out.date.slice(0, 10)}, ${describeMachine(mb)}\n\nWall clock (median):\n\n${markdown(rows, b.peers)}\n${rowsCpu ? `\nCPU time / ${mb.cores} cores:\n\n${markdown(rowsCpu, b.peers)}\n` : ''}`;
  writeFileSync(resolve(RESULTS, `${b.name}.md`), md);
}
if (selected.some((b) => GPU_BENCHES.includes(b))) console.log(`\n${gpuSummary(RESULTS).text}`);
dispose();
process.exit(0); // the peers' devices keep node alive
