// The run directory (--out) is never mixed up or lost: a non-empty --out is refused unless --resume continues the run
// in it or --overwrite replaces it (and --overwrite replaces only a run's own files); two `train` processes never write
// one directory (a lock holding the pid; a dead holder's lock is taken over with a notice); file-system errors name
// what was being written and the fix. Each refusal: one line, exit 1, and the directory exactly as it was.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { dawngrad, expectRefusal, tempDir, writeData, snapshot, DAWN_STARTED, HF_TINY } from './helpers.ts';

let tmp: string;
let data: string;
beforeAll(() => {
  tmp = tempDir();
  data = writeData(join(tmp, 'data'), { train: 8, validation: 3, test: 3 });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const train = (out: string, ...extra: string[]) => [
  'train', '--model', HF_TINY, '--data', data, '--out', out, '--max-train', '8', '--max-eval', '3', '--batch-size', '4',
  '--checkpoint-every', '1', '--targets', 'q_proj,v_proj', '--r', '4', '--eval-mode', 'generate', '--no-eval-before', '--system', 'x', ...extra,
];

/** What a run killed at step 10 leaves (enough for the checks, which read only names and the trainer state). */
function killedRunDir(dir: string, extra: Record<string, string> = {}): string {
  mkdirSync(join(dir, 'checkpoint'), { recursive: true });
  writeFileSync(join(dir, 'checkpoint/trainer_state.json'), JSON.stringify({ step: 10, epoch: 0, batchInEpoch: 10 }));
  writeFileSync(join(dir, 'metrics.jsonl'), Array.from({ length: 10 }, (_, i) => JSON.stringify({ step: i + 1, loss: 1 })).join('\n') + '\n');
  for (const [f, text] of Object.entries(extra)) writeFileSync(join(dir, f), text);
  return dir;
}

/** A pid that belonged to a process which has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout as unknown as number;
}

describe.concurrent('a non-empty --out', () => {
  const refusals: [string, (d: string) => void, RegExp][] = [
    ['a killed run, without --resume', (d) => killedRunDir(d),
      /^dawngrad: --out \S+ already holds a run that did not finish \(checkpoint at step 10\): --resume continues it, --overwrite replaces it, or choose another --out$/],
    ['a finished run, without --resume', (d) => killedRunDir(d, { 'summary.json': '{}' }), /already holds a finished run \(last checkpoint at step 10\)/],
    ['an unrelated directory', (d) => (mkdirSync(d), writeFileSync(join(d, 'notes.txt'), 'mine')), /already holds 1 file\(s\): notes\.txt: --resume continues it/],
    ['an unrelated directory, with --overwrite', (d) => killedRunDir(d, { 'notes.txt': 'mine' }),
      /^dawngrad: --out \S+ holds files a run does not write \(notes\.txt\): --overwrite only replaces a previous run; choose another --out$/],
  ];
  it.each(refusals)('%s: refused before anything loads, nothing changed', async (name, make, msg) => {
    const out = join(tmp, name.replace(/\W+/g, '-'));
    make(out);
    const before = snapshot(out);
    const r = await dawngrad(train(out, ...(name.includes('--overwrite') ? ['--overwrite'] : [])));
    expectRefusal(r, 1, msg);
    expect(r.rawStderr, 'the GPU was started').not.toMatch(DAWN_STARTED);
    expect(snapshot(out)).toEqual(before);
  });

  it('--overwrite replaces a previous run: its files go, the new run is whole', async () => {
    const out = killedRunDir(join(tmp, 'overwrite'), { 'summary.json': '{"old": true}' });
    const r = await dawngrad(train(out, '--overwrite'));
    expect(r.code, r.rawStderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'checkpoint/trainer_state.json'), 'utf8')).step).toBe(2);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2]);
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).old).toBeUndefined();
  });

  it('--out that is a file, or below one: the path and what to do, nothing created', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    expectRefusal(await dawngrad(train(file)), 1, /^dawngrad: --out \S+a-file is a file, not a directory: give the directory the run should write$/);
    const below = await dawngrad(train(join(file, 'run')));
    expectRefusal(below, 1, /^dawngrad: writing the run directory \S+a-file\/run: a file is in the way where a directory belongs; choose another --out \(ENOTDIR\)$/);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('--out where directories cannot be made: the path and what to do', async () => {
    const r = await dawngrad(train(`/sys/dawngrad-test-${process.pid}/run`));
    expectRefusal(r, 1, /^dawngrad: writing the run directory \/sys\/dawngrad-test-\d+\/run: (not permitted there|permission denied; make the directory writable or); choose another --out \(E(PERM|ACCES)\)$/);
  });

  it('--resume with --overwrite is a usage error', async () => {
    const r = await dawngrad(train(join(tmp, 'both'), '--resume', '--overwrite'));
    expectRefusal(r, 2, /--resume and --overwrite contradict each other/);
  });
});

describe.concurrent('one run per directory', () => {
  it('a directory locked by a live process is refused, naming it; nothing changed', async () => {
    const out = killedRunDir(join(tmp, 'locked'));
    // this test process is alive: its pid stands for a run still writing the directory
    writeFileSync(join(out, '.dawngrad.lock'), JSON.stringify({ pid: process.pid, host: hostname(), started: '2025-01-01T00:00:00.000Z' }));
    const before = snapshot(out);
    const r = await dawngrad([...train(out), '--resume']);
    expectRefusal(r, 1, new RegExp(`^dawngrad: --out \\S+locked is in use by another dawngrad train \\(pid ${process.pid}, started 2025-01-01T00:00:00\\.000Z\\); ` +
      'wait for it or choose another --out \\(if no such run is alive, delete \\S+\\.dawngrad\\.lock\\)$'));
    expect(snapshot(out)).toEqual(before);
  });

  it("a dead process's lock is taken over with a notice", async () => {
    const out = join(tmp, 'stale');
    mkdirSync(out);
    writeFileSync(join(out, '.dawngrad.lock'), JSON.stringify({ pid: Number(deadPid()), host: hostname(), started: 'x' }));
    const r = await dawngrad(train(out));
    expect(r.code, r.rawStderr).toBe(0);
    expect(r.stdout).toMatch(/--out \S+stale: taking over the lock of dawngrad train pid \d+, which is no longer running/);
    expect(existsSync(join(out, '.dawngrad.lock')), 'released at the end').toBe(false);
  });

  it('two trains started together on one --out: one runs, the other is refused; the metrics are one run\'s', async () => {
    const out = join(tmp, 'race');
    const [a, b] = await Promise.all([dawngrad(train(out)), dawngrad(train(out))]);
    const [won, lost] = a.code === 0 ? [a, b] : [b, a];
    expect(won.code, won.rawStderr).toBe(0);
    // refused at the lock while the other runs, or (if it came late) at the check of a non-empty --out
    expectRefusal(lost, 1, /--out \S+race (is in use by another dawngrad train \(pid \d+|already holds a)/);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2]);
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
