// One LoRA training step of the tiny model, timed: real tweet batches built exactly as the trainer builds them
// (PromptFormat → epochBatches → trainBatch → forwardBackward → optimizerStep), all-linear r 8, batch 16, the shared
// system-prompt prefix run once per batch as the trainer does (--no-prefix: every row whole, the plain batch).
// Warm-up steps, then the median of N steps with a sync after each; the per-kernel GPU profile of one more step;
// and, when Debian's PyTorch is installed (bench/peers/install.sh), the same step in PyTorch on the CPU for the ratio.
//
//   pnpm exec tsx bench/src/step.ts [--warmup 2] [--steps 5] [--batch 16] [--top 15] [--no-peer] [--no-profile] [--no-prefix]
//   pnpm bench step        (the same through bench/src/main.ts, with --quick: 1 warm-up + 2 steps)
//
// Writes bench/results/step.json; the batches the peer replays go to bench/results/step-batches.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, availableParallelism } from 'node:os';
import { execFileSync, spawnSync } from 'node:child_process';
import { resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { init, dispose, rt, startProfile, stopProfile, formatProfile, type ProfileReport } from '@dawngrad/tensor';
import { loadModel, HfTokenizer } from '@dawngrad/model';
import { inject } from '@dawngrad/lora';
import { PromptFormat, loadSplit, epochBatches, trainBatch, forwardBackward, optimizerStep, AdamW, type Example } from '@dawngrad/train';
import type { Bench } from './lib/types.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SHARED = resolve(REPO, '../shared');
const MODEL = resolve(SHARED, 'models/tweet-mistral-tiny');
const DATA = resolve(SHARED, 'data/tweet_eval/sentiment');
const RESULTS = resolve(REPO, 'bench/results');
const PEER = resolve(REPO, 'bench/peers/torch_step.py');
const PYTHON = '/usr/bin/python3'; // Debian's python3-torch lives here, not in pyenv's python
const FULL_RECIPE_STEPS = 2851; // ⌈45,615 train tweets / 16⌉: one epoch of the `full` recipe

export interface StepOptions {
  warmup: number;
  steps: number;
  batch: number;
  /** rows of the printed profile table */
  top: number;
  peer: boolean;
  profile: boolean;
  /** run each batch's common prompt prefix once (trainBatch's sharePrefix, the trainer's default) */
  sharePrefix: boolean;
  log: (line: string) => void;
}

interface StepTiming {
  T: number;
  P: number; // the shared prefix run once (0: plain batch)
  tokens: number; // non-padding tokens
  ms: number; // encode + GPU, synced
  encodeMs: number; // the synchronous JS part: batch upload, graph, every dispatch encoded (the GPU may already run)
  /** CPU time of the whole process (JS + lavapipe's threads, which run in-process): steadier than wall on a loaded box */
  cpuMs: number;
  loss: number;
}

interface PeerResult {
  median_ms: number;
  ms: number[];
  median_cpu_ms: number;
  torch: string;
  threads: number;
  blas: string;
  blas_loaded: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Run the bench (init() must have been called); returns everything step.json holds. */
export async function runStepBench(o: StepOptions) {
  const { log } = o;
  const info = rt().ctx.info;
  const load0 = loadavg()[0]!; // other processes share the cores (lavapipe's "GPU" included): timings scale with this
  const tokenizer = HfTokenizer.fromDir(MODEL);
  const model = await loadModel(MODEL);
  const fmt = new PromptFormat(tokenizer);
  const nBatches = o.warmup + o.steps + 1;
  // the full recipe's order (a seeded shuffle, no length bucketing) over the first tweets: the same batch-length spread
  const train = await loadSplit(DATA, 'train', { limit: Math.max(1024, nBatches * o.batch) });
  const examples: Example[] = fmt.examples(train.texts, train.labels);
  const order = epochBatches(examples, 0, { batchSize: o.batch, seed: 0, dropLast: true }).slice(0, nBatches);
  const lora = inject(model, { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: 'all-linear', seed: 0 });
  const params = lora.parameters();
  const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.01, maxGradNorm: 1, packed: lora.packed() });
  const c = model.config;

  let poolAfter3: number | null = null; // pool allocations once the first 3 steps (warm-up included) have run
  const step = async (i: number): Promise<StepTiming> => {
    const rows = order[i]!.map((j) => examples[j]!);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const batch = trainBatch(rows, { sharePrefix: o.sharePrefix });
    const loss = forwardBackward(model, batch);
    batch.dispose();
    optimizerStep(opt, 1e-3);
    const t1 = performance.now();
    const value = (await loss.toArray())[0]!; // the readback is queued after the optimizer: it waits for the whole step
    loss.dispose();
    await rt().sync();
    const t2 = performance.now();
    const cpu = process.cpuUsage(c0);
    if (i === 2) poolAfter3 = rt().pool.stats.allocations; // the issue's measure: nothing allocated after step 3
    if (!Number.isFinite(value)) throw new Error(`step bench: non-finite loss at step ${i}`);
    const P = batch.prefix?.shape[1] ?? 0;
    return { T: batch.T, P, tokens: batch.tokens, ms: t2 - t0, encodeMs: t1 - t0, cpuMs: (cpu.user + cpu.system) / 1000, loss: value };
  };

  log(`adapter: ${info.description || info.device}${info.isSoftware ? ' (software)' : ''}`);
  log(`model: ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, heads ${c.numAttentionHeads}/${c.numKeyValueHeads}, ` +
    `vocab ${c.vocabSize}; LoRA all-linear r 8 on ${lora.layers.length} layers (${lora.numTrainable().toLocaleString('en')} values); batch ${o.batch}`);
  const warm: StepTiming[] = [];
  for (let i = 0; i < o.warmup; i++) warm.push(await step(i));
  log(`warm-up: ${warm.map((s) => `${s.ms.toFixed(0)} ms (T ${s.T})`).join(', ') || 'none'}; ` +
    (o.sharePrefix ? 'shared prompt prefix run once per batch' : 'plain batches (--no-prefix)'));
  const pool0 = { ...rt().pool.stats };
  const timed: StepTiming[] = [];
  for (let i = o.warmup; i < o.warmup + o.steps; i++) {
    const s = await step(i);
    timed.push(s);
    log(`step ${timed.length}/${o.steps}: ${s.ms.toFixed(0)} ms (encode ${s.encodeMs.toFixed(0)} ms, CPU ${s.cpuMs.toFixed(0)} ms), ` +
      `T ${s.T} (prefix ${s.P}), ${s.tokens} tokens, loss ${s.loss.toFixed(4)}`);
  }
  const ms = median(timed.map((s) => s.ms));
  const encodeMs = median(timed.map((s) => s.encodeMs));
  const cpuMs = median(timed.map((s) => s.cpuMs));
  const tokensPerSecond = timed.reduce((n, s) => n + s.tokens, 0) / (timed.reduce((n, s) => n + s.ms, 0) / 1000);
  const epochHours = (FULL_RECIPE_STEPS * ms) / 3.6e6;
  log(`median ${ms.toFixed(0)} ms/step (encode ${encodeMs.toFixed(0)} ms; process CPU ${cpuMs.toFixed(0)} ms), ` +
    `${tokensPerSecond.toFixed(0)} tokens/s; one epoch of the full recipe (${FULL_RECIPE_STEPS} steps) ≈ ${epochHours.toFixed(2)} h`);
  log(`load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`);
  const after3 = poolAfter3 === null || o.warmup + o.steps < 4 ? 'n/a (fewer than 4 steps)' : `${rt().pool.stats.allocations - poolAfter3}`;
  log(`pool: ${after3} buffers allocated after step 3 (goal 0), ${rt().pool.stats.allocations - pool0.allocations} during the timed steps, ` +
    `peak ${(rt().pool.stats.peakBytesLive / 2 ** 20).toFixed(0)} MiB live`);

  // one more step under the profiler, per call site (key + M, N, K for matmuls), folded back per key for the table
  let profile = null;
  if (o.profile) {
    const t0 = performance.now();
    startProfile({ by: 'params' });
    const s = await step(o.warmup + o.steps);
    const sites = await stopProfile();
    const profiledWallMs = performance.now() - t0;
    const byKey = perKey(sites);
    const roles = matmulRoles(sites, c.vocabSize, 8);
    log(`profile of one step (T ${s.T}; profiled wall ${profiledWallMs.toFixed(0)} ms: a pass and 2 timestamps per dispatch):`);
    for (const l of formatProfile(byKey, o.top).split('\n')) log(l);
    log(byFamily(byKey));
    log('matmul by role: ' + Object.entries(roles).map(([r, v]) => `${r} ${((100 * v) / (byKey.gpuMs || 1)).toFixed(1)}%`).join(', '));
    log('top call sites (M, N, K for matmuls):');
    for (const l of formatProfile(sites, 10).split('\n').slice(0, 11)) log(l);
    profile = { ...byKey, kernels: byKey.kernels.slice(0, 40), profiledWallMs, matmulRolesMs: roles, callSites: sites.kernels.slice(0, 40) };
  }

  // the batches the peer replays: token ids, lengths, prompt lengths and answers of the warm-up and timed steps
  mkdirSync(RESULTS, { recursive: true });
  const batchesFile = resolve(RESULTS, 'step-batches.json');
  writeFileSync(batchesFile, JSON.stringify({
    warmup: o.warmup,
    batches: order.slice(0, o.warmup + o.steps).map((idx) => {
      const rows = idx.map((j) => examples[j]!);
      const T = Math.max(...rows.map((r) => r.prompt.length + r.answer.length));
      return {
        input_ids: rows.map((r) => [...r.prompt, ...r.answer, ...new Array<number>(T - r.prompt.length - r.answer.length).fill(0)]),
        lengths: rows.map((r) => r.prompt.length + r.answer.length),
        prompt_lengths: rows.map((r) => r.prompt.length),
        answers: rows.map((r) => [...r.answer]),
      };
    }),
  }));
  const { peer, skipped } = o.peer ? runPeer(batchesFile, log) : { peer: null, skipped: 'not asked for (--no-peer)' };
  const ratio = peer ? ms / peer.median_ms : null;
  const cpuRatio = peer ? cpuMs / peer.median_cpu_ms : null;
  if (peer) {
    log(`PyTorch ${peer.torch} (${peer.blas_loaded}): median ${peer.median_ms.toFixed(0)} ms/step (CPU ${peer.median_cpu_ms.toFixed(0)} ms) → ` +
      `dawngrad/PyTorch = ${ratio!.toFixed(1)}× wall, ${cpuRatio!.toFixed(1)}× CPU time (goal ≤ 4× wall, issue 14)`);
  } else log(`PyTorch peer skipped: ${skipped}`);

  const peakBytesLive = rt().pool.stats.peakBytesLive;
  lora.dispose();
  opt.dispose();
  return {
    date: new Date().toISOString(),
    loadavg: { start: load0, end: loadavg()[0]! },
    adapter: info,
    model: MODEL,
    config: { layers: c.numHiddenLayers, hidden: c.hiddenSize, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, vocab: c.vocabSize },
    lora: { r: 8, alpha: 16, targets: 'all-linear', layers: lora.layers.length, trainable: lora.numTrainable() },
    batch: o.batch,
    sharePrefix: o.sharePrefix,
    warmup: warm,
    steps: timed,
    medianMs: ms,
    medianEncodeMs: encodeMs,
    medianCpuMs: cpuMs,
    tokensPerSecond,
    epoch: { steps: FULL_RECIPE_STEPS, hours: epochHours },
    peakBytesLive,
    profile,
    peer: peer ?? { skipped },
    ratio,
    cpuRatio,
  };
}

/** The PyTorch peer on the same batches, when /usr/bin/python3 has torch; else the reason it was skipped. */
function runPeer(batchesFile: string, log: (l: string) => void): { peer: PeerResult | null; skipped: string | null } {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    const why = probe.error?.message ?? (probe.stderr.trim().split('\n').at(-1) || 'unknown');
    return { peer: null, skipped: `${PYTHON} cannot import torch (${why}); run bench/peers/install.sh as root` };
  }
  log('PyTorch peer (bench/peers/torch_step.py, 1 thread):');
  const out = execFileSync(PYTHON, [PEER, '--config', resolve(MODEL, 'config.json'), '--batches', batchesFile, '--json'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = out.trim().split('\n');
  for (const l of lines.slice(0, -1)) log(`  ${l}`);
  return { peer: JSON.parse(lines.at(-1)!) as PeerResult, skipped: null };
}

/** Fold a per-call-site report back into one row per kernel key. */
function perKey(r: ProfileReport): ProfileReport {
  const m = new Map<string, ProfileReport['kernels'][number]>();
  for (const k of r.kernels) {
    const key = k.key.replace(/ \(.*\)$/, '');
    const e = m.get(key) ?? { key, count: 0, gpuMs: 0, share: 0, encodeMs: 0 };
    e.count += k.count;
    e.gpuMs += k.gpuMs;
    e.share += k.share;
    e.encodeMs += k.encodeMs;
    m.set(key, e);
  }
  return { ...r, kernels: [...m.values()].sort((x, y) => y.gpuMs - x.gpuMs) };
}

/** Matmul GPU ms by what it computes: the frozen weights, the r-wide LoRA factors, or the vocabulary-wide lm_head. */
function matmulRoles(r: ProfileReport, vocab: number, rank: number): Record<string, number> {
  const out: Record<string, number> = { 'base weights': 0, [`LoRA (r = ${rank})`]: 0, 'lm_head (V)': 0 };
  for (const k of r.kernels) {
    const m = /^matmul.* \((\d+),(\d+),(\d+)\)$/.exec(k.key);
    if (!m) continue;
    const dims = m.slice(1).map(Number);
    out[dims.includes(vocab) ? 'lm_head (V)' : dims.includes(rank) ? `LoRA (r = ${rank})` : 'base weights']! += k.gpuMs;
  }
  return out;
}

/** GPU time by kernel family (the key up to its first ':' or '.'). */
function byFamily(r: ProfileReport): string {
  const fam = new Map<string, { ms: number; n: number }>();
  for (const k of r.kernels) {
    const f = k.key.split(/[:. ]/)[0]!;
    const e = fam.get(f) ?? { ms: 0, n: 0 };
    e.ms += k.gpuMs;
    e.n += k.count;
    fam.set(f, e);
  }
  const rows = [...fam.entries()].sort((x, y) => y[1].ms - x[1].ms);
  return 'by family: ' + rows.map(([f, e]) => `${f} ${((100 * e.ms) / (r.gpuMs || 1)).toFixed(1)}% (${e.n})`).join(', ');
}

const epochsPerHour = (msPerStep: number) => 3.6e6 / (FULL_RECIPE_STEPS * msPerStep);

/** The registered bench (bench/src/registry.ts): tokens/s of a training step and the epochs/h it implies, ours and PyTorch's. */
export const stepBench: Bench = {
  name: 'step',
  title: 'LoRA training step of the tiny model, batch 16 (tokens/s, higher is better)',
  peers: ['pytorch-cpu'],
  async run(ctx) {
    const r = await runStepBench({ warmup: ctx.quick ? 1 : 2, steps: ctx.quick ? 2 : 5, batch: 16, top: 15, peer: true, profile: true, sharePrefix: true, log: ctx.log });
    const peer = 'median_ms' in r.peer ? (r.peer as PeerResult) : null;
    const tokensPerStep = median(r.steps.map((s) => s.tokens));
    return {
      rows: [{
        case: `all-linear r 8, batch 16 × ~${median(r.steps.map((s) => s.T))} tokens, prefix of ~${median(r.steps.map((s) => s.P))} run once`,
        unit: 'tokens/s',
        ours: tokensPerStep / (r.medianMs / 1000),
        peers: { 'pytorch-cpu': peer ? tokensPerStep / (peer.median_ms / 1000) : null },
        notes: { medianMs: r.medianMs, peerMedianMs: peer?.median_ms ?? null, ratio: r.ratio, cpuRatio: r.cpuRatio, epochHours: r.epoch.hours },
      }, {
        // the issue's goal is ≤ 40 minutes an epoch, i.e. ≥ 1.5 epochs/h (a rate, so that higher is better like every row)
        case: `one epoch of the full recipe (${FULL_RECIPE_STEPS} steps) at the median step; goal ≥ 1.5 (≤ 40 min)`,
        unit: 'epochs/h',
        ours: epochsPerHour(r.medianMs),
        peers: { 'pytorch-cpu': peer ? epochsPerHour(peer.median_ms) : null },
      }],
      info: r,
    };
  },
};

// run on its own: pnpm exec tsx bench/src/step.ts [flags] (bundled into .gpu/bench.mjs, every module shares the
// bundle's URL: the file name tells them apart)
if (/step\.ts$/.test(process.argv[1] ?? '') && import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const { values: a } = parseArgs({
    options: {
      warmup: { type: 'string', default: '2' },
      steps: { type: 'string', default: '5' },
      batch: { type: 'string', default: '16' },
      top: { type: 'string', default: '15' },
      'no-peer': { type: 'boolean', default: false },
      'no-profile': { type: 'boolean', default: false },
      'no-prefix': { type: 'boolean', default: false },
    },
  });
  const n = (k: 'warmup' | 'steps' | 'batch' | 'top', min: number) => {
    const v = Number(a[k]);
    if (!Number.isInteger(v) || v < min) throw new Error(`step bench: --${k} must be an integer ≥ ${min}, got '${a[k]}'`);
    return v;
  };
  const opts = { warmup: n('warmup', 0), steps: n('steps', 1), batch: n('batch', 1), top: n('top', 1), peer: !a['no-peer'], profile: !a['no-profile'],
    sharePrefix: !a['no-prefix'] };
  await init();
  const result = await runStepBench({ ...opts, log: (l) => console.log(l) });
  writeFileSync(resolve(RESULTS, 'step.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${resolve(RESULTS, 'step.json')}`);
  dispose();
}
