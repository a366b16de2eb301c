// Training that survives a kill: `dawngrad train` is SIGKILLed mid-epoch (after its first checkpoint, during a later
// step), then `--resume --out same` finishes it. The final adapter equals an uninterrupted run's with the same seed
// (f32 tolerance), and at most the steps since the last checkpoint are repeated.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '@dawngrad/model';
import { dawngrad, startCli, expectRefusal, tempDir, writeData, HF_TINY } from './helpers.ts';
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

const flags = (out: string) => [
  'train', '--model', HF_TINY, '--data', data, '--out', out, '--max-train', '48', '--max-eval', '3', '--batch-size', '4',
  '--checkpoint-every', String(EVERY), '--targets', 'q_proj,v_proj', '--r', '4', '--lr', '0.003', '--seed', '7',
  '--eval-mode', 'generate', '--no-eval-before', '--system', 'x',
];

interface Metric {
  step: number;
  loss: number;
}

const metrics = (out: string): Metric[] => {
  const p = join(out, 'metrics.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8').split('\n').filter((l) => l.trim().startsWith('{')).flatMap((l) => {
    try {
      return [JSON.parse(l) as Metric];
    } catch {
      return []; // a line the kill cut in half
    }
  });
};

const checkpointStep = (out: string): number | null => {
  try {
    return JSON.parse(readFileSync(join(out, 'checkpoint/trainer_state.json'), 'utf8')).step as number;
  } catch {
    return null;
  }
};

async function adapterTensors(dir: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const out = new Map<string, Float32Array>();
  for await (const t of f.tensors()) out.set(t.name, t.data as Float32Array);
  await f.close();
  return out;
}

describe('kill and resume', () => {
  it('SIGKILL mid-epoch, then --resume: the same final adapter as an uninterrupted run, at most the steps since the checkpoint repeated', async () => {
    const straight = join(tmp, 'straight');
    const killed = join(tmp, 'killed');
    // the uninterrupted reference runs beside the one we kill (two cores: each gets one)
    const reference = dawngrad(flags(straight), { timeoutMs: 300_000 });

    const { child, done } = startCli(flags(killed), { timeoutMs: 300_000 });
    // wait until a checkpoint exists and training has gone past it: a step recorded after the checkpoint's
    let killedAfter = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 25));
      const ck = checkpointStep(killed);
      const last = metrics(killed).at(-1)?.step ?? 0;
      if (ck !== null && last > ck) {
        child.kill('SIGKILL');
        killedAfter = last;
        break;
      }
      if (child.exitCode !== null) throw new Error(`the run ended (exit ${child.exitCode}) before it could be killed:\n${(await done).rawStderr}`);
    }
    const k = await done;
    expect(k.signal, 'the run was killed, not finished').toBe('SIGKILL');
    expect(existsSync(join(killed, 'adapter-last')), 'killed before the end').toBe(false);
    const stepsBeforeKill = Math.max(killedAfter, ...metrics(killed).map((m) => m.step)); // it may have logged one more
    const savedAt = checkpointStep(killed)!;
    expect(savedAt).toBeGreaterThanOrEqual(EVERY);
    expect(stepsBeforeKill).toBeLessThan(STEPS);

    // the worst moment for the next run: killed between a checkpoint's two renames — the checkpoint directory is
    // gone, its previous version waits as .checkpoint.old-PID, a half-filled .checkpoint.tmp-PID lies beside it
    renameSync(join(killed, 'checkpoint'), join(killed, '.checkpoint.old-99999'));
    mkdirSync(join(killed, '.checkpoint.tmp-99999'));
    writeFileSync(join(killed, '.checkpoint.tmp-99999/trainer_state.json'), '{"step": 10');

    const resumed = await dawngrad([...flags(killed), '--resume'], { timeoutMs: 300_000 });
    expect(resumed.code, resumed.rawStderr).toBe(0);
    const at = Number(/resumed at step (\d+)/.exec(resumed.stdout)?.[1]);
    expect(at).toBe(savedAt);
    // repeated work is bounded by the checkpoint interval (0 only if a checkpoint landed just as the kill did)
    expect(stepsBeforeKill - at).toBeGreaterThanOrEqual(0);
    expect(stepsBeforeKill - at).toBeLessThanOrEqual(EVERY);
    expect(readdirSync(killed).filter((n) => n.startsWith('.checkpoint.')), 'stray checkpoint temps left').toEqual([]);

    const ref = await reference;
    expect(ref.code, ref.rawStderr).toBe(0);
    // every step logged exactly once, with the uninterrupted run's losses
    const a = metrics(straight);
    const b = metrics(killed);
    expect(b.map((m) => m.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(a.map((m) => m.step)).toEqual(b.map((m) => m.step));
    expect(maxAbs(b.map((m) => m.loss), a.map((m) => m.loss))).toBeLessThanOrEqual(1e-4);
    // the final adapters agree to f32 rounding
    const [ta, tb] = [await adapterTensors(join(straight, 'adapter-last')), await adapterTensors(join(killed, 'adapter-last'))];
    expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
    let worst = 0;
    for (const [name, x] of ta) {
      const scale = Math.max(1e-3, ...Array.from(x, Math.abs));
      worst = Math.max(worst, maxAbs(tb.get(name)!, x) / scale);
      expect(maxAbs(tb.get(name)!, x) / scale, name).toBeLessThanOrEqual(1e-5);
    }
    console.log(
      `resume: killed after step ${stepsBeforeKill}, resumed at ${at}; final adapter max |Δ|/max|w| ${worst.toExponential(2)}, ` +
        `loss max |Δ| ${maxAbs(b.map((m) => m.loss), a.map((m) => m.loss)).toExponential(2)}`,
    );
  });

  it('a resume that would change the data order is refused before the model loads, naming the option', async () => {
    const out = join(tmp, 'straight'); // finished above, with its last checkpoint
    expect(existsSync(join(out, 'checkpoint/trainer_state.json')), 'needs the run of the test above').toBe(true);
    const r = await dawngrad([...flags(out).map((f) => (f === '4' ? '8' : f)), '--resume']); // --batch-size 4 -> 8 (and --r 4 -> 8)
    expectRefusal(r, 1, /--resume: \S+straight was trained with r = 4, this run has 8; resume with the same value$/);
    expect(r.rawStderr).not.toMatch(/artificially reduced|llvmpipe/);
    const s = await dawngrad([...flags(out).map((f) => (f === '7' ? '8' : f)), '--resume']); // --seed 7 -> 8
    expectRefusal(s, 1, /--resume: \S+straight was trained with seed = 7, this run has 8; resume with the same value$/);
  });
});
