// dawngrad bench-model: time the forward pass and one LoRA training step (forward + backward + AdamW) of any
// config's shape, with random weights — no checkpoint needed (e.g. Lite-Oute-1-300M, whose repository has no
// weights here) — and report the peak GPU memory the buffer pool held.
import { dirname, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type { Tensor, ProfileReport } from '@dawngrad/tensor';
import type { MistralForCausalLM } from '@dawngrad/model';
import type { TrainBatch } from '../batching.ts';
import { CliError, num, parse, precisionFlag, type Command } from './args.ts';

const USAGE = `usage: dawngrad bench-model --config FILE (--random | --weights) [--batch B] [--seq T] [--backward] [flags]

  --config FILE     a Hugging Face config.json (MistralForCausalLM / LlamaForCausalLM)
  --random          random weights of the config's shape (fast to make; timings do not depend on the values)
  --weights         load the checkpoint that sits beside config.json instead
  --batch B         sequences per batch (default 1)
  --seq T           tokens per sequence (default 32)
  --backward        also time a LoRA training step: forward + backward + clip + AdamW (all-linear, r 8, alpha 16)
  --answer N        loss/logit rows per sequence, the last N positions, as a training batch has (default 2)
  --warmup N        untimed runs first (default 1)
  --steps N         timed runs; the median is reported (default 3)
  --profile         print the per-kernel GPU profile of one more run of each mode (--json: under "profiles")
  --precision P     f32 (default) or mixed: the frozen weights in f16, f16 matmuls summed in f32 (tensor cores where
                    the GPU has them)
  --no-tune         on a GPU, skip measuring the matmul tiles of these shapes first (default: measured, and cached)
  --json            print the results as one JSON object`;

export const benchModel: Command = {
  summary: 'time forward and forward+backward of a config with random weights; peak GPU memory',
  async run(argv) {
    const { values: v } = parse('bench-model', argv, {
      config: { type: 'string' },
      random: { type: 'boolean' },
      weights: { type: 'boolean' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      backward: { type: 'boolean' },
      answer: { type: 'string' },
      warmup: { type: 'string' },
      steps: { type: 'string' },
      profile: { type: 'boolean' },
      precision: { type: 'string' },
      'no-tune': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    });
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    if (!v.config) throw new CliError('bench-model: --config FILE is required');
    if (!existsSync(v.config)) throw new CliError(`bench-model: --config ${v.config} does not exist`);
    if (!!v.random === !!v.weights) throw new CliError('bench-model: give exactly one of --random and --weights');
    const B = num('bench-model', 'batch', v.batch, 1, { int: true, min: 1 });
    const T = num('bench-model', 'seq', v.seq, 32, { int: true, min: 2 });
    const answer = num('bench-model', 'answer', v.answer, 2, { int: true, min: 1, max: T - 1 });
    const warmup = num('bench-model', 'warmup', v.warmup, 1, { int: true, min: 0 });
    const steps = num('bench-model', 'steps', v.steps, 3, { int: true, min: 1 });
    const r = await benchmarkModel({
      config: resolve(v.config),
      weights: v.weights ? dirname(resolve(v.config)) : null,
      B, T, answer, warmup, steps,
      backward: !!v.backward,
      profile: !!v.profile,
      precision: precisionFlag('bench-model', v.precision) ?? 'f32',
      tune: !v['no-tune'],
      log: v.json ? () => undefined : (l) => console.log(l),
    });
    console.log(v.json ? JSON.stringify(r, null, 2) : formatBench(r));
    return 0;
  },
};

export interface BenchModelOptions {
  config: string;
  /** load this checkpoint directory; null: random weights */
  weights: string | null;
  B: number;
  T: number;
  answer: number;
  warmup: number;
  steps: number;
  backward: boolean;
  profile: boolean;
  precision?: 'f32' | 'mixed';
  /** measure the matmul tiles of these shapes first (on a GPU; cached per adapter) */
  tune?: boolean;
  log: (line: string) => void;
}

export interface BenchModelResult {
  config: string;
  adapter: string;
  params: number;
  weightBytes: number;
  B: number;
  T: number;
  /** median ms of a forward pass (no graph kept) to the loss rows */
  forwardMs: number;
  forwardTokensPerSecond: number;
  /** peak bytes held by the pool during the forward passes, weights included */
  forwardPeakBytes: number;
  /** median ms of a LoRA training step: forward + backward + clip + AdamW */
  trainStepMs: number | null;
  trainTokensPerSecond: number | null;
  trainPeakBytes: number | null;
  loadMs: number;
  precision: 'f32' | 'mixed';
  /** with --profile: the per-kernel GPU profile of one more forward and one more step (what the GPU benches record) */
  profiles?: { forward?: ProfileReport; step?: ProfileReport };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)]!;

/** Random weights of the config's shape: one host buffer of uniform values (std 0.02) sliced per tensor; norms at 1. */
async function randomModel(configPath: string, precision: 'f32' | 'mixed'): Promise<MistralForCausalLM> {
  const { Tensor, mulberry32, ref } = await import('@dawngrad/tensor');
  const { loadConfig, expectedParameters, buildModel, storedAsF16 } = await import('@dawngrad/model');
  const cfg = loadConfig(configPath);
  const specs = expectedParameters(cfg);
  const largest = Math.max(...specs.map((p) => p.shape.reduce((a, b) => a * b, 1)));
  const rand = mulberry32(0);
  const host = new Float32Array(largest);
  const a = 0.02 * Math.sqrt(3); // uniform on [-a, a] has std 0.02, as HF's initializer_range
  for (let i = 0; i < host.length; i++) host[i] = (2 * rand() - 1) * a;
  const ones = new Float32Array(cfg.hiddenSize).fill(1);
  const half = precision === 'mixed' ? ref.toF16Bits(host) : null; // the same values as f16 (mixed precision's storage)
  const weights = new Map<string, Tensor>();
  for (const p of specs) {
    const n = p.shape.reduce((x, y) => x * y, 1);
    if (half && storedAsF16(p.name)) weights.set(p.name, Tensor.fromArray(half.subarray(0, n), p.shape, 'f16'));
    else weights.set(p.name, Tensor.fromArray(p.shape.length === 1 ? ones : host.subarray(0, n), p.shape, 'f32'));
  }
  return buildModel(cfg, weights);
}

/** A [B, T] batch of random ids, no padding, whose loss rows are the last `answer` positions of each sequence. */
async function randomBatch(B: number, T: number, answer: number, vocab: number, seed: number): Promise<TrainBatch> {
  const { Tensor, mulberry32 } = await import('@dawngrad/tensor');
  const rand = mulberry32(seed);
  const ids = Int32Array.from({ length: B * T }, () => 3 + Math.floor(rand() * (vocab - 3)));
  const at: number[] = [];
  for (let b = 0; b < B; b++) for (let j = T - answer - 1; j < T - 1; j++) at.push(b * T + j);
  const inputIds = Tensor.fromArray(ids, [B, T], 'i32');
  const attentionMask = Tensor.fromArray(new Int32Array(B * T).fill(1), [B, T], 'i32');
  const logitsAt = Tensor.fromArray(Int32Array.from(at), [at.length], 'i32');
  return {
    B, T, inputIds, attentionMask, logitsAt,
    targets: Int32Array.from(at, (i) => ids[i + 1]!),
    tokens: B * T,
    dispose() {
      inputIds.dispose();
      attentionMask.dispose();
      logitsAt.dispose();
    },
  };
}

export async function benchmarkModel(o: BenchModelOptions): Promise<BenchModelResult> {
  const { init, dispose, rt, scope, startProfile, stopProfile, formatProfile } = await import('@dawngrad/tensor');
  const { noGrad } = await import('@dawngrad/autograd');
  const { loadModel } = await import('@dawngrad/model');
  const { inject } = await import('@dawngrad/lora');
  const { AdamW } = await import('../optim/adamw.ts');
  const { forwardBackward, optimizerStep } = await import('../step.ts');
  const { dawnTogglesFor, prepareKernels } = await import('../tuning.ts');
  const precision = o.precision ?? 'f32';
  dawnTogglesFor(precision);
  await init();
  try {
    const r = rt();
    if (precision === 'mixed' && !r.ctx.hasF16) throw new CliError(`bench-model: --precision mixed needs an adapter with shader-f16; ${r.ctx.info.description || r.ctx.info.device} has none`);
    const t0 = performance.now();
    const model = o.weights ? await loadModel(o.weights, { precision }) : await randomModel(o.config, precision);
    await r.sync();
    const loadMs = performance.now() - t0;
    const c = model.config;
    const params = model.namedParameters().reduce((n, p) => n + p.param.size, 0);
    const weightBytes = r.pool.stats.bytesLive;
    o.log(`${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, heads ${c.numAttentionHeads}/${c.numKeyValueHeads}, ` +
      `MLP ${c.intermediateSize}, vocab ${c.vocabSize}: ${(params / 1e6).toFixed(1)}M parameters, ` +
      `${(weightBytes / 2 ** 20).toFixed(0)} MiB on the GPU (${o.weights ? 'loaded' : 'random'} in ${(loadMs / 1000).toFixed(1)} s)`);
    const batch = await randomBatch(o.B, o.T, o.answer, c.vocabSize, 1);
    if (o.tune !== false) {
      const tuned = await prepareKernels(c, { rows: [o.B * o.T], headRows: o.B * o.answer, f16: precision === 'mixed' });
      if (tuned.length) o.log(`measured the matmul tiles of ${tuned.length} shape classes: ${tuned.map((t) => `${t.shapeClass} → ${t.best}`).join(', ')}`);
    }
    const profiles: NonNullable<BenchModelResult['profiles']> = {};
    const timed = async (what: string, run: () => void, phase: 'forward' | 'step'): Promise<{ ms: number; peak: number }> => {
      r.pool.stats.peakBytesLive = r.pool.stats.bytesLive; // this phase's high-water mark
      const times: number[] = [];
      for (let i = 0; i < o.warmup + o.steps; i++) {
        const s = performance.now();
        run();
        await r.sync();
        if (i >= o.warmup) times.push(performance.now() - s);
      }
      const ms = median(times);
      o.log(`${what}: ${ms.toFixed(1)} ms median of ${o.steps} (${times.map((t) => t.toFixed(0)).join(', ')})`);
      if (o.profile) {
        startProfile();
        run();
        profiles[phase] = await stopProfile();
        o.log(formatProfile(profiles[phase], 12));
      }
      return { ms, peak: r.pool.stats.peakBytesLive };
    };
    const fwd = await timed(`forward [${o.B}, ${o.T}]`, () =>
      scope(() => void noGrad(() => model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }, { logitsAt: batch.logitsAt }))),
      'forward',
    );
    let step: { ms: number; peak: number } | null = null;
    if (o.backward) {
      const lora = inject(model, { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: 'all-linear', seed: 0 });
      const trainable = lora.parameters();
      const opt = new AdamW(trainable, { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1, packed: lora.packed() });
      step = await timed(`train step [${o.B}, ${o.T}] (LoRA r 8 on ${lora.layers.length} layers)`, () => {
        forwardBackward(model, batch).dispose();
        optimizerStep(opt, 1e-4);
      }, 'step');
      opt.dispose();
      lora.dispose();
    } else model.dispose();
    batch.dispose();
    const tokens = o.B * o.T;
    return {
      config: o.config,
      adapter: r.ctx.info.description || r.ctx.info.device,
      params,
      weightBytes,
      B: o.B,
      T: o.T,
      forwardMs: fwd.ms,
      forwardTokensPerSecond: tokens / (fwd.ms / 1000),
      forwardPeakBytes: fwd.peak,
      trainStepMs: step?.ms ?? null,
      trainTokensPerSecond: step ? tokens / (step.ms / 1000) : null,
      trainPeakBytes: step?.peak ?? null,
      loadMs,
      precision,
      ...(o.profile ? { profiles } : {}),
    };
  } finally {
    dispose();
  }
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

export function formatBench(r: BenchModelResult): string {
  const lines = [
    `forward     ${r.forwardMs.toFixed(1)} ms  (${r.forwardTokensPerSecond.toFixed(0)} tokens/s), peak ${mib(r.forwardPeakBytes)} ` +
      `(weights ${mib(r.weightBytes)} + ${mib(r.forwardPeakBytes - r.weightBytes)})`,
  ];
  if (r.trainStepMs !== null) {
    lines.push(`train step  ${r.trainStepMs.toFixed(1)} ms  (${r.trainTokensPerSecond!.toFixed(0)} tokens/s), peak ${mib(r.trainPeakBytes!)} ` +
      `(weights ${mib(r.weightBytes)} + ${mib(r.trainPeakBytes! - r.weightBytes)})`);
  }
  return lines.join('\n');
}
