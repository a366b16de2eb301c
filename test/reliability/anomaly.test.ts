// Non-finite values: the trainer stops loudly at the step that made one and keeps the last good checkpoint; with
// --detect-anomaly it names the first op (or parameter) that produced a NaN/Inf. The CLI cases run hooked-cli.ts with
// DAWNGRAD_TEST_NAN_BEFORE_STEP=k (a NaN written into the first LoRA parameter just before step k, through TrainHooks).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { init, dispose, rt, scope, Tensor } from '@dawngrad/tensor';
import { param, log, sqrt, sum, mul, backward, detectAnomaly, checkAnomalies, AnomalyError } from '@dawngrad/autograd';
import { SafetensorsFile } from '@dawngrad/model';
import { dawngrad, tempDir, writeData, HF_TINY, type CliResult } from './helpers.ts';

describe('detectAnomaly (autograd, in-process)', () => {
  beforeAll(async () => {
    await init();
  });
  afterAll(() => {
    detectAnomaly(false);
    dispose();
  });

  const caught = async (): Promise<AnomalyError | null> => checkAnomalies().then(() => null, (e: unknown) => e as AnomalyError);

  it('names the first op whose forward output holds a NaN, not the ones downstream of it', async () => {
    detectAnomaly(true);
    const x = param(Tensor.fromArray([1, -1, 2]), 'x');
    const y = sum(mul(log(x), x)); // log(-1) = NaN, then mul and sum carry it
    const e = await caught();
    expect(e).toBeInstanceOf(AnomalyError);
    expect(e!.source).toMatch(/^log\(x\) forward -> \[3\]$/);
    expect(e!.count).toBe(1);
    y.data.dispose();
    x.data.dispose();
    detectAnomaly(false);
  });

  it('names the backward of an op whose gradient is the first non-finite value', async () => {
    detectAnomaly(true);
    const x = param(Tensor.fromArray([0, 4]), 'x');
    const y = sum(sqrt(x)); // finite forward; d sqrt(x)/dx = 1/(2·sqrt 0) = Inf
    await checkAnomalies(); // the forward alone is clean
    backward(y);
    const e = await caught();
    expect(e!.source).toMatch(/^sqrt\(x\) backward -> gradient of input 0 \(x\)$/);
    x.zeroGrad();
    x.data.dispose();
    detectAnomaly(false);
  });

  it('names a parameter that already holds a NaN before any op reads it', async () => {
    detectAnomaly(true);
    const w = param(Tensor.fromArray([NaN, 1]), 'layer.weight');
    sum(w);
    const e = await caught();
    expect(e!.source).toBe('parameter layer.weight [2] (read by sum)');
    w.data.dispose();
    detectAnomaly(false);
  });

  it('off, it adds no dispatch; on, its counts are released after each check', async () => {
    const x = param(Tensor.fromArray([1, 2, 3]), 'x');
    const before = rt().stats.dispatches;
    scope(() => void sum(log(x)));
    const plain = rt().stats.dispatches - before;
    const live = rt().pool.stats.bytesLive;
    detectAnomaly(true);
    const on0 = rt().stats.dispatches;
    scope(() => void sum(log(x)));
    expect(rt().stats.dispatches - on0).toBeGreaterThan(plain); // a count per op, a fill per round
    await checkAnomalies();
    expect(rt().pool.stats.bytesLive).toBe(live);
    detectAnomaly(false);
    x.data.dispose();
  });
});

describe.concurrent('a NaN during training (the CLI)', () => {
  let tmp: string;
  let data: string;
  beforeAll(() => {
    tmp = tempDir();
    data = writeData(join(tmp, 'data'), { train: 32, validation: 3, test: 3 });
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  // 8 steps of 4, a checkpoint every 2; the NaN goes in before step 5, so the last good checkpoint is step 4
  const args = (out: string, ...extra: string[]) => [
    'train', '--model', HF_TINY, '--data', data, '--out', out, '--max-train', '32', '--batch-size', '4', '--checkpoint-every', '2',
    '--targets', 'q_proj,v_proj', '--r', '4', '--eval-mode', 'generate', '--no-eval-before', '--system', 'x', ...extra,
  ];
  const run = (out: string, ...extra: string[]): Promise<CliResult> => dawngrad(args(out, ...extra), { env: { DAWNGRAD_TEST_NAN_BEFORE_STEP: '5' }, hooked: true });

  const checkStoppedAt5 = async (r: CliResult, out: string, msg: RegExp) => {
    const errors = r.lines.filter((l) => l.startsWith('dawngrad:'));
    expect(errors, r.rawStderr).toHaveLength(1);
    expect(errors[0]).toMatch(msg);
    expect(errors[0]).toContain(`the last good checkpoint is in ${join(out, 'checkpoint')}`);
    expect(r.code).toBe(1);
    // the checkpoint is the one before the NaN, and its adapter is finite
    const state = JSON.parse(readFileSync(join(out, 'checkpoint/trainer_state.json'), 'utf8'));
    expect(state.step).toBe(4);
    const f = await SafetensorsFile.open(join(out, 'checkpoint/adapter/adapter_model.safetensors'));
    for await (const t of f.tensors()) expect((t.data as Float32Array).every(Number.isFinite), t.name).toBe(true);
    await f.close();
    // no step at or after the NaN was recorded, and the run stopped before writing any final adapter
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(steps.every((s) => Number.isFinite(s.loss) && Number.isFinite(s.gradNorm))).toBe(true);
    expect(existsSync(join(out, 'adapter-last'))).toBe(false);
  };

  it('stops at the step that made it, names it, and keeps the last good checkpoint', async () => {
    const out = join(tmp, 'plain');
    // lr given, not the recipe's default, so the resume below can name both values
    await checkStoppedAt5(await run(out, '--lr', '0.003'), out, /^dawngrad: non-finite (loss|gradient norm) at step 5; /);
    // and that checkpoint is usable: resume from it (here with a lower learning rate, as after a real divergence)
    const r = await dawngrad([...args(out, '--lr', '0.001'), '--resume']);
    expect(r.code, r.rawStderr).toBe(0);
    expect(r.stdout).toMatch(/resuming with lr = 0\.001 \(was 0\.003\)/);
    expect(r.stdout).toMatch(/resumed at step 4 /);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    expect(existsSync(join(out, 'adapter-last/adapter_model.safetensors'))).toBe(true);
  });

  it('--detect-anomaly names the first op or parameter that produced it', async () => {
    const out = join(tmp, 'anomaly');
    const r = await run(out, '--detect-anomaly');
    await checkStoppedAt5(r, out, /^dawngrad: step 5: first non-finite value: parameter base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.default\.weight \[4, 112\] \(read by linearLowRank\) \(1 NaN\/Inf value\)/);
  });
});
