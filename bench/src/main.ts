// pnpm bench [name ...] [--quick] [--list]
// Runs the registered benches (registry.ts; all of them by default), prints a table per bench — our figure, each
// peer's, and ours/peer — and writes bench/results/<name>.json (machine, adapter, load, every figure and its ms).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init, dispose } from '@dawngrad/tensor';
import { BENCHES } from './registry.ts';
import { machine, describeMachine } from './lib/machine.ts';
import { table, markdown } from './lib/table.ts';

const RESULTS = resolve(dirname(fileURLToPath(import.meta.url)), '../results');

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: { quick: { type: 'boolean', default: false }, list: { type: 'boolean', default: false } },
});
if (flags.list) {
  for (const b of BENCHES) console.log(`${b.name.padEnd(12)} ${b.title}`);
  process.exit(0);
}
const unknown = positionals.filter((p) => !BENCHES.some((b) => b.name === p));
if (unknown.length) throw new Error(`pnpm bench: no bench named ${unknown.join(', ')} (have: ${BENCHES.map((b) => b.name).join(', ')})`);
const selected = positionals.length ? BENCHES.filter((b) => positionals.includes(b.name)) : BENCHES;

await init();
const m = machine();
console.log(`machine: ${describeMachine(m)}`);
mkdirSync(RESULTS, { recursive: true });
for (const b of selected) {
  console.log(`\n== ${b.title}`);
  const t0 = performance.now();
  const { rows, rowsCpu, info } = await b.run({ quick: flags.quick, log: (line) => console.log(`  ${line}`) });
  const mb = { ...m, loadavg: { start: m.loadavg.start, end: Number(os.loadavg()[0]!.toFixed(2)) } };
  const took = `${((performance.now() - t0) / 1000).toFixed(0)} s; load ${mb.loadavg.start}→${mb.loadavg.end} on ${mb.cores} cores`;
  const cpuTitle = `CPU time / ${mb.cores} cores (this process's own work; steadier on a shared machine)`;
  console.log(`\nwall clock (median):\n${table(rows, b.peers)}${rowsCpu ? `\n\n${cpuTitle}:\n${table(rowsCpu, b.peers)}` : ''}\n(${took})`);
  const out = { name: b.name, title: b.title, date: new Date().toISOString(), quick: flags.quick, machine: mb, info, peers: b.peers, rows, rowsCpu };
  writeFileSync(resolve(RESULTS, `${b.name}.json`), JSON.stringify(out, null, 2) + '\n');
  const md = `${b.title} — ${out.date.slice(0, 10)}, ${describeMachine(mb)}\n\nWall clock (median):\n\n${markdown(rows, b.peers)}\n${rowsCpu ? `\nCPU time / ${mb.cores} cores:\n\n${markdown(rowsCpu, b.peers)}\n` : ''}`;
  writeFileSync(resolve(RESULTS, `${b.name}.md`), md);
}
dispose();
process.exit(0); // the peers' devices keep node alive
