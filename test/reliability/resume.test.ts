// Training that survives a kill. Runs are stopped at an exact point through hooked-cli.ts (TrainHooks): SIGKILL just
// before a step, or right after a checkpoint — never by racing a poll against the run. Then `--resume --out same`
// finishes it: the final adapter equals an uninterrupted run's with the same seed (f32 tolerance), and only the steps
// since the last checkpoint are repeated. A resume is refused, changing nothing, when it would continue a different run:
// other options that fix the data order, or other base-model weights at the same path.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '@dawngrad/model';
import { dawngrad, expectRefusal, tempDir, writeData, copyModel, readRaw, writeRaw, entries, snapshot, DAWN_STARTED, HF_TINY } from './helpers.ts';
import { maxAbs } from '../shared.ts';

const EVERY = 3; // checkpoint every 3 steps
const STEPS = 12; // 48 examples / batch 4, one epoch

let tmp: string;
let data: string;
beforeAll(() => {
  tmp = tempDir();
  data = writeData(join(tmp, 'data'), { train: 48, validation: 3, test: 3 });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const flags = (out: string, model = HF_TINY) => [
  'train', '--model', model, '--data', data, '--out', out, '--max-train', '48', '--max-eval', '3', '--batch-size', '4',
  '--checkpoint-every', String(EVERY), '--targets', 'q_proj,v_proj', '--r', '4', '--lr', '0.003', '--seed', '7',
  '--eval-mode', 'generate', '--no-eval-before', '--system', 'x',
];

/** A run of flags(out) SIGKILLed right after its step-3 checkpoint: what the refusals below start from. */
async function killedRun(out: string, model = HF_TINY): Promise<void> {
  const r = await dawngrad(flags(out, model), { hooked: true, env: { DAWNGRAD_TEST_KILL_AFTER_CHECKPOINT: String(EVERY) } });
  expect(r.signal, r.rawStderr).toBe('SIGKILL');
  expect(checkpointStep(out)).toBe(EVERY);
}

interface Metric {
  step: number;
  loss: number;
}

const metrics = (out: string): Metric[] =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Metric);

const checkpointStep = (out: string): number => JSON.parse(readFileSync(join(out, 'checkpoint/trainer_state.json'), 'utf8')).step as number;

async function adapterTensors(dir: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const out = new Map<string, Float32Array>();
  for await (const t of f.tensors()) out.set(t.name, t.data as Float32Array);
  await f.close();
  return out;
}

describe('kill and resume', () => {
  it('SIGKILL mid-epoch, then --resume: the same final adapter as an uninterrupted run, only the steps since the checkpoint repeated', async () => {
    const straight = join(tmp, 'straight');
    const killed = join(tmp, 'killed');
    // the uninterrupted reference runs beside the one we kill (two cores: each gets one)
    const reference = dawngrad(flags(straight), { timeoutMs: 300_000 });
    // killed just before step 5: the step-3 checkpoint is on disk and step 4 ran after it
    const k = await dawngrad(flags(killed), { hooked: true, env: { DAWNGRAD_TEST_KILL_BEFORE_STEP: '5' }, timeoutMs: 300_000 });
    expect(k.signal, k.rawStderr).toBe('SIGKILL');
    expect(existsSync(join(killed, 'adapter-last')), 'killed before the end').toBe(false);
    expect(checkpointStep(killed)).toBe(EVERY);
    expect(metrics(killed).map((m) => m.step)).toEqual([1, 2, 3]); // step 4's loss was still being read back

    // the worst moment for the next run: killed between a checkpoint's two renames — the checkpoint directory is
    // gone, its previous version waits as .checkpoint.old-PID, a half-filled .checkpoint.tmp-PID lies beside it
    renameSync(join(killed, 'checkpoint'), join(killed, '.checkpoint.old-99999'));
    mkdirSync(join(killed, '.checkpoint.tmp-99999'));
    writeFileSync(join(killed, '.checkpoint.tmp-99999/trainer_state.json'), '{"step": 10');

    const resumed = await dawngrad([...flags(killed), '--resume'], { timeoutMs: 300_000 });
    expect(resumed.code, resumed.rawStderr).toBe(0);
    expect(resumed.stdout).toMatch(/resumed at step 3 /);
    // the killed process's lock is taken over, with a notice
    expect(resumed.stdout).toMatch(/taking over the lock of dawngrad train pid \d+, which is no longer running/);
    expect(readdirSync(killed).filter((n) => n.startsWith('.')), 'stray checkpoint temps or a lock left').toEqual([]);

    const ref = await reference;
    expect(ref.code, ref.rawStderr).toBe(0);
    // every step logged exactly once, with the uninterrupted run's losses
    const [a, b] = [metrics(straight), metrics(killed)];
    expect(b.map((m) => m.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(a.map((m) => m.step)).toEqual(b.map((m) => m.step));
    expect(maxAbs(b.map((m) => m.loss), a.map((m) => m.loss))).toBeLessThanOrEqual(1e-4);
    // the final adapters agree to f32 rounding
    const [ta, tb] = [await adapterTensors(join(straight, 'adapter-last')), await adapterTensors(join(killed, 'adapter-last'))];
    expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
    for (const [name, x] of ta) {
      const scale = Math.max(1e-3, ...Array.from(x, Math.abs));
      expect(maxAbs(tb.get(name)!, x) / scale, name).toBeLessThanOrEqual(1e-5);
    }
  });

  it('a resume that would change the data order is refused before the model loads, naming the option; nothing changes', async () => {
    const out = join(tmp, 'options');
    await killedRun(out);
    const before = snapshot(out);
    const r = await dawngrad([...flags(out).map((f) => (f === '4' ? '8' : f)), '--resume']); // --batch-size 4 -> 8 (and --r 4 -> 8)
    expectRefusal(r, 1, /--resume: \S+options was trained with r = 4, this run has 8; resume with the same value$/);
    expect(r.rawStderr).not.toMatch(DAWN_STARTED);
    const s = await dawngrad([...flags(out).map((f) => (f === '7' ? '8' : f)), '--resume']); // --seed 7 -> 8
    expectRefusal(s, 1, /--resume: \S+options was trained with seed = 7, this run has 8; resume with the same value$/);
    expect(snapshot(out)).toEqual(before);
  });

  it('a resume on other weights at the same model path is refused, naming the file; nothing changes', async () => {
    const model = copyModel(join(tmp, 'model'));
    const out = join(tmp, 'weights');
    await killedRun(out, model);
    // the same names, shapes and file size — only the values differ, as after retraining and saving in place
    const raw = readRaw(join(model, 'model.safetensors'));
    for (const [, e] of entries(raw)) {
      const v = new Float32Array(raw.data.buffer, raw.data.byteOffset + e.data_offsets[0], (e.data_offsets[1] - e.data_offsets[0]) / 4);
      for (let i = 0; i < v.length; i++) v[i] = v[i]! * 1.01;
    }
    writeRaw(join(model, 'model.safetensors'), raw);
    const before = snapshot(out);
    const r = await dawngrad([...flags(out, model), '--resume']);
    expectRefusal(r, 1, /--resume: the base model \S+model is not the one \S+weights was trained on \(model\.safetensors differs\); resume with that model, or start a new run$/);
    expect(r.rawStderr).not.toMatch(DAWN_STARTED);
    expect(snapshot(out)).toEqual(before);
  });

  it('no space left while resuming: one line naming what was being written and where, the checkpoint intact', async () => {
    const out = join(tmp, 'full');
    await killedRun(out);
    rmSync(join(out, 'metrics.jsonl'));
    symlinkSync('/dev/full', join(out, 'metrics.jsonl')); // every write to it fails with ENOSPC
    const ckpt = snapshot(join(out, 'checkpoint'));
    const r = await dawngrad([...flags(out), '--resume']);
    expectRefusal(r, 1, /^dawngrad: writing metrics\.jsonl in \S+full: no space left on the device; free some space or choose an --out on another disk \(then --resume: the last checkpoint is intact\) \(ENOSPC\)$/);
    expect(snapshot(join(out, 'checkpoint'))).toEqual(ckpt);
    expect(existsSync(join(out, '.dawngrad.lock')), 'the lock was released').toBe(false);
  });
});
