// Whole steps on a GPU: the forward pass to the loss rows and one LoRA training step (all-linear r 8, forward +
// backward + clip + AdamW) of Lite-Oute-300M at B16 × T96 and of the tiny model at B16 × T80 and B8 × T80, random
// weights, ours in f32 and in mixed precision (f16 weights, tensor cores), against PyTorch on CUDA in the same run:
// f32 with TF32 off, and bf16 autocast (issue 15's peer).
// Ours runs through `dawngrad bench-model --random --backward --profile --json` in a subprocess per case (a fresh device,
// a timeout, and any extra flags — e.g. `--no-tune`, never `--precision`, which it sets itself — passed through from
// `pnpm bench --step-flags`); the profile of each step gives its dispatch count, CPU encode µs a dispatch and matmul
// share of GPU time.
// --smoke: the 300M config cut to 1 layer and the tiny model, at B2 × T16, for a run on lavapipe.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ProfileReport } from '@dawngrad/tensor';
import type { Bench, BenchContext, Row } from '../lib/types.ts';
import { configVariant, dawngradCommand, modelConfig, type ModelName } from './env.ts';
import { torchPeer } from './peer.ts';

interface StepCase {
  label: string;
  model: ModelName;
  B: number;
  T: number;
  /** cut the config to this many layers (smoke runs) */
  layers?: number;
  timeoutMs: number;
}

const CASES: StepCase[] = [
  { label: 'Lite-Oute-300M', model: 'lite-oute-300m', B: 16, T: 96, timeoutMs: 150_000 },
  { label: 'tweet-mistral-tiny', model: 'tiny', B: 16, T: 80, timeoutMs: 60_000 },
  { label: 'tweet-mistral-tiny', model: 'tiny', B: 8, T: 80, timeoutMs: 60_000 },
];
const SMOKE: StepCase[] = [
  { label: 'Lite-Oute-300M, 1 layer', model: 'lite-oute-300m', B: 2, T: 16, layers: 1, timeoutMs: 300_000 },
  { label: 'tweet-mistral-tiny', model: 'tiny', B: 2, T: 16, timeoutMs: 180_000 },
];
const ANSWER = 2; // loss rows a sequence, as a training batch of the tweet task has
const PEERS = ['torch-f32', 'torch-bf16'];

/** What `dawngrad bench-model --json` prints (the fields used here). */
interface OursResult {
  adapter: string;
  params: number;
  forwardMs: number;
  trainStepMs: number | null;
  forwardPeakBytes: number;
  trainPeakBytes: number | null;
  profiles?: { forward?: ProfileReport; step?: ProfileReport };
}

interface TorchMode {
  forward_ms: number;
  step_ms: number;
  forward_peak_bytes: number | null;
  step_peak_bytes: number | null;
}
interface TorchStep {
  torch: string;
  gpu?: string;
  impl: string;
  hf_error?: string;
  modes: Record<string, TorchMode>;
}

/** The profile's headline: dispatches, CPU encode µs a dispatch, matmul share of GPU time, the top kernels. */
export function profileSummary(p: ProfileReport) {
  const mm = p.kernels.filter((k) => k.key.startsWith('matmul'));
  const matmulMs = mm.reduce((s, k) => s + k.gpuMs, 0);
  return {
    mode: p.mode,
    dispatches: p.dispatches,
    submits: p.submits,
    encodeMs: p.encodeMs,
    encodeUsPerDispatch: p.dispatches ? (1000 * p.encodeMs) / p.dispatches : 0,
    gpuMs: p.gpuMs,
    gpuSpanMs: p.gpuSpanMs,
    matmulMs,
    matmulDispatches: mm.reduce((s, k) => s + k.count, 0),
    matmulShare: p.gpuMs ? matmulMs / p.gpuMs : 0,
    top: p.kernels.slice(0, 12).map((k) => ({ key: k.key, count: k.count, gpuMs: k.gpuMs, encodeMs: k.encodeMs })),
  };
}

/** Our precisions: f32 (the peer is torch f32) and mixed (the peer is torch bf16 autocast). */
const PRECISIONS = ['f32', 'mixed'] as const;

function runOurs(c: StepCase, config: string, warmup: number, steps: number, extra: string[], log: (l: string) => void): { out: OursResult | null; error: string | null } {
  const [cmd, ...pre] = dawngradCommand();
  const args = [...pre, 'bench-model', '--config', config, '--random', '--batch', String(c.B), '--seq', String(c.T), '--answer', String(ANSWER),
    '--backward', '--warmup', String(warmup), '--steps', String(steps), '--profile', '--json', ...extra];
  const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: c.timeoutMs, maxBuffer: 1 << 26 });
  if (r.error || r.status !== 0) {
    const why = r.error ? `${r.error.message}${r.signal ? ` (${r.signal} after ${c.timeoutMs / 1000} s)` : ''}` : `exit ${r.status}`;
    const last = (r.stderr ?? '').split('\n').filter((l) => l.trim() && !/^Warning: /.test(l)).at(-1) ?? '';
    log(`ours failed: ${why}${last ? `: ${last}` : ''}`);
    return { out: null, error: `${why}${last ? `: ${last}` : ''}` };
  }
  return { out: JSON.parse(r.stdout) as OursResult, error: null };
}

const gib = (b: number | null | undefined) => (b ? `${(b / 2 ** 30).toFixed(2)} GiB` : '—');
const times = (ours: number | null | undefined, peer: number | null | undefined) => (ours && peer ? ` (ours ${(ours / peer).toFixed(2)}× its time)` : '');

export const gpuStepBench: Bench = {
  name: 'gpu-step',
  title: 'forward and LoRA training step on a GPU (tokens/s, higher is better): ours vs PyTorch on CUDA (f32 TF32 off, bf16 autocast)',
  peers: PEERS,
  async run(ctx: BenchContext) {
    const smoke = !!ctx.smoke;
    const extra = ctx.extraFlags ?? [];
    if (extra.some((f) => f === '--precision' || f.startsWith('--precision='))) {
      // a usage error, in one line, before any work (the bench's own --precision would silently override it)
      console.error('pnpm bench gpu-step: --step-flags may not contain --precision: the bench runs every case in both precisions (f32 and mixed) itself');
      process.exit(2);
    }
    const [warmup, steps] = smoke ? [0, 1] : ctx.quick ? [1, 2] : [2, 5];
    const rows: Row[] = [];
    const cases: Record<string, unknown>[] = [];
    if (extra.length) ctx.log(`extra flags for bench-model: ${extra.join(' ')}`);
    for (const c of smoke ? SMOKE : CASES) {
      const name = `${c.label} B${c.B} × T${c.T}`;
      const config = c.layers ? configVariant(modelConfig(c.model), { num_hidden_layers: c.layers }) : modelConfig(c.model);
      ctx.log(`${name}: ours (dawngrad bench-model, f32 and mixed, ${warmup} warm-up + ${steps} timed, then one profiled)`);
      const runs = Object.fromEntries(PRECISIONS.map((p) => [p, runOurs(c, config, warmup, steps, [...extra, '--precision', p], ctx.log)]));
      const ours = runs.f32!;
      const peerArgs = ['step', '--config', config, '--batch', String(c.B), '--seq', String(c.T), '--answer', String(ANSWER),
        '--warmup', String(warmup), '--steps', String(steps), '--modes', 'f32,bf16'];
      const peer = torchPeer<TorchStep>(peerArgs, ctx.log, c.timeoutMs);
      if (peer.skipped) ctx.log(`PyTorch peer skipped: ${peer.skipped}`);
      const o = ours.out;
      const t = peer.out?.modes ?? {};
      const tokens = c.B * c.T;
      const rate = (ms: number | null | undefined) => (ms ? tokens / (ms / 1000) : null);
      const profile = o?.profiles?.step ? profileSummary(o.profiles.step) : null;
      const fwdProfile = o?.profiles?.forward ? profileSummary(o.profiles.forward) : null;
      for (const [precision, phase] of PRECISIONS.flatMap((p) => (['forward', 'step'] as const).map((ph) => [p, ph] as const))) {
        const op = runs[precision]!.out;
        const oursMs = phase === 'forward' ? op?.forwardMs : op?.trainStepMs;
        const peerMs = (m: string) => (phase === 'forward' ? t[m]?.forward_ms : t[m]?.step_ms);
        rows.push({
          case: `${name} ${phase === 'forward' ? 'forward' : 'LoRA train step'}${precision === 'mixed' ? ' (ours mixed)' : ''}`,
          unit: 'tokens/s',
          ours: rate(oursMs),
          peers: { 'torch-f32': rate(peerMs('f32')), 'torch-bf16': rate(peerMs('bf16')) },
          notes: { ms: { ours: oursMs ?? null, 'torch-f32': peerMs('f32') ?? null, 'torch-bf16': peerMs('bf16') ?? null } },
        });
        ctx.log(`${name} ${phase} (${precision}): ours ${oursMs?.toFixed(1) ?? '—'} ms, torch f32 ${peerMs('f32')?.toFixed(1) ?? '—'} ms${times(oursMs, peerMs('f32'))}, ` +
          `torch bf16 ${peerMs('bf16')?.toFixed(1) ?? '—'} ms${times(oursMs, peerMs('bf16'))}`);
      }
      ctx.log(`${name} peak memory of the step: ours ${gib(o?.trainPeakBytes)} (mixed ${gib(runs.mixed!.out?.trainPeakBytes)}), torch f32 ${gib(t.f32?.step_peak_bytes)}, torch bf16 ${gib(t.bf16?.step_peak_bytes)}`);
      if (profile) {
        ctx.log(`${name} profile of one step: ${profile.dispatches} dispatches, CPU encode ${profile.encodeMs.toFixed(1)} ms ` +
          `(${profile.encodeUsPerDispatch.toFixed(1)} µs a dispatch), GPU ${profile.gpuMs.toFixed(1)} ms in kernels, matmul ` +
          `${profile.matmulMs.toFixed(1)} ms (${(100 * profile.matmulShare).toFixed(0)}%) over ${profile.matmulDispatches} dispatches`);
      }
      if (c.layers) rmSync(dirname(config), { recursive: true, force: true }); // configVariant's temp folder
      cases.push({ name, config: c.layers ? `${modelConfig(c.model)} cut to ${c.layers} layer(s)` : config, B: c.B, T: c.T, answer: ANSWER,
        extraFlags: extra, ours: o ? { ...o, config: undefined, profiles: undefined } : { error: ours.error },
        oursMixed: runs.mixed!.out ? { ...runs.mixed!.out, config: undefined, profiles: undefined } : { error: runs.mixed!.error },
        profile: { step: profile, forward: fwdProfile },
        profileMixed: runs.mixed!.out?.profiles?.step ? profileSummary(runs.mixed!.out.profiles.step) : null,
        torch: peer.out ?? { skipped: peer.skipped } });
    }
    return { rows, info: { smoke, extraFlags: extra, cases } };
  },
};
