// Test-split evaluation speed: `evaluate()` from @dawngrad/train on the shared tiny model over the first N test tweets
// (256; 64 with --quick), in each of its modes, against the same evaluation in PyTorch on the CPU (1 thread,
// bench/peers/torch_eval.py: same bf16 weights, same prompt ids, same batches, a KV cache as ours).
//   first-token  one forward per batch, the answers' first-token logits compared (what validation runs); the batch's
//                shared prompt prefix (the ~25-token system turn) runs once, in ours and in the peer;
//   generate     greedy generation of ≤ 4 tokens with a KV cache (prefill of every row whole + decode steps);
//   both         the trainer's default --eval-mode: generation, with the first-token scores from the same prefill
//                (the run report's headline macro-F1 is generation's).
// Unit: tweets/s (higher is better); each row's notes extrapolate to all 12,284 test tweets (issue 7's goal: ≤ 5 min):
// at the sample's rate per tweet, and scaled by padding — sorted into batches, the whole split's rows are padded to a
// narrower width than a small sample's (its batches span fewer lengths), so the per-tweet figure is an upper bound.
//
// Timing: one untimed pass over the sample's longest batch in first-token and in both modes (shader compiles, and the
// pool's buffers for the widest batch, which narrower ones reuse within 2×), then one timed evaluate() per mode over
// the N tweets, synced (a pass is 4 batches, long enough to average the load out); wall clock and this process's CPU
// time (JS + Dawn + lavapipe's threads). The peer's passes take seconds, so it reports the median of 3 per mode.
// evaluate() tokenises its prompts inside the timing, as the trainer does; the peer gets the ids ready-made (the
// tokenising time is logged apart). The two's predictions are compared row by row.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rt } from '@dawngrad/tensor';
import { loadModel, HfTokenizer } from '@dawngrad/model';
import { PromptFormat, loadSplit, evaluate, BASE_DEFAULTS, type EvalMode, type EvalResult } from '@dawngrad/train';
import type { Bench, Row } from '../lib/types.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SHARED = resolve(REPO, '../shared');
const MODEL = resolve(SHARED, 'models/tweet-mistral-tiny');
const DATA = resolve(SHARED, 'data/tweet_eval/sentiment');
const PEER = resolve(REPO, 'bench/peers/torch_eval.py');
const PYTHON = '/usr/bin/python3'; // Debian's python3-torch lives here, not in pyenv's python
const TEST_TWEETS = 12_284; // the TweetEval sentiment test split
const GOAL_MINUTES = 5;
const MAX_NEW_TOKENS = 4; // evaluate()'s default: the label word and the end token fit

const MODES: { mode: EvalMode; label: string }[] = [
  { mode: 'first-token', label: 'first-token scoring' },
  { mode: 'generate', label: 'greedy generation ≤ 4 tokens' },
  { mode: 'both', label: 'both from one prefill (trainer default)' },
];

interface Run {
  mode: EvalMode;
  seconds: number;
  cpuSeconds: number;
  tweetsPerSecond: number;
  /** the whole test split at this rate, minutes */
  testSplitMinutes: number;
  /** the same scaled by the split's padded width over the sample's */
  testSplitMinutesPadded: number;
  macroF1: { firstToken?: number; generate?: number };
  invalidRate?: number;
  /** pool buffers created during the timed pass (eval batches vary in length too) */
  poolAllocations: number;
  firstToken?: number[];
  generated?: number[][];
}

interface PeerMode {
  seconds: number;
  cpu_seconds: number;
  first_token: number[] | null;
  generated: number[][] | null;
}

interface PeerResult {
  torch: string;
  threads: number;
  blas: string;
  blas_loaded: string;
  modes: Record<string, PeerMode>;
}

const minutes = (tweetsPerSecond: number) => TEST_TWEETS / tweetsPerSecond / 60;
const fmtMin = (m: number) => (m >= 60 ? `${(m / 60).toFixed(1)} h` : `${m.toFixed(1)} min`);

export const evalBench: Bench = {
  name: 'eval',
  title: `Test-split evaluation of the tiny model, batch ${BASE_DEFAULTS.evalBatchSize} (tweets/s, higher is better)`,
  peers: ['pytorch-cpu'],
  async run({ quick, log }) {
    const n = quick ? 64 : 256;
    const batchSize = BASE_DEFAULTS.evalBatchSize;
    const load0 = loadavg()[0]!;
    const cores = availableParallelism();
    const tokenizer = HfTokenizer.fromDir(MODEL);
    const model = await loadModel(MODEL);
    const fmt = new PromptFormat(tokenizer);
    const test = await loadSplit(DATA, 'test', { limit: n });
    const t0 = performance.now();
    const prompts = test.texts.map((t) => fmt.prompt(t));
    const tokenizeMs = performance.now() - t0;
    const lengths = prompts.map((p) => p.length);
    const meanLen = lengths.reduce((a, b) => a + b, 0) / n;
    log(`${n} test tweets, batch ${batchSize}, prompts ${Math.min(...lengths)}-${Math.max(...lengths)} tokens (mean ${meanLen.toFixed(1)}); ` +
      `tokenising them took ${tokenizeMs.toFixed(0)} ms (inside evaluate()'s time)`);
    // the whole split's batches, for the padding-scaled extrapolation
    const all = await loadSplit(DATA, 'test');
    const allLengths = all.texts.map((t) => fmt.prompt(t).length);
    const width = { sample: paddedWidth(lengths, batchSize), split: paddedWidth(allLengths, batchSize) };
    const padScale = width.split / width.sample;
    log(`padded width per row in batches of ${batchSize}: ${width.sample.toFixed(1)} here, ${width.split.toFixed(1)} over all ` +
      `${allLengths.length.toLocaleString('en')} test tweets (mean prompt ${(allLengths.reduce((a, b) => a + b, 0) / allLengths.length).toFixed(1)} tokens)`);

    // untimed: every kernel of the forward, the prefill and the decode step compiled, on the longest batch
    const longest = [...lengths.keys()].sort((a, b) => lengths[b]! - lengths[a]!).slice(0, Math.min(n, batchSize));
    for (const mode of ['first-token', 'both'] as const) {
      await evaluate(model, fmt, longest.map((i) => test.texts[i]!), longest.map((i) => test.labels[i]!), { batchSize, mode, maxNewTokens: MAX_NEW_TOKENS });
    }

    const runs: Run[] = [];
    for (const { mode } of MODES) {
      const pool0 = rt().pool.stats.allocations;
      const c0 = process.cpuUsage();
      const s0 = performance.now();
      const r: EvalResult = await evaluate(model, fmt, test.texts, test.labels, { batchSize, mode, maxNewTokens: MAX_NEW_TOKENS });
      await rt().sync();
      const seconds = (performance.now() - s0) / 1000;
      const cpu = process.cpuUsage(c0);
      const run: Run = {
        mode,
        seconds,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        tweetsPerSecond: n / seconds,
        testSplitMinutes: minutes(n / seconds),
        testSplitMinutesPadded: minutes(n / seconds) * padScale,
        macroF1: { firstToken: r.firstToken?.metrics.macroF1, generate: r.generate?.metrics.macroF1 },
        invalidRate: r.generate?.invalidRate,
        poolAllocations: rt().pool.stats.allocations - pool0,
        firstToken: r.firstToken?.predictions,
        generated: r.generate?.outputs,
      };
      runs.push(run);
      log(`${mode}: ${n} tweets in ${seconds.toFixed(1)} s (CPU ${run.cpuSeconds.toFixed(1)} s), ${run.tweetsPerSecond.toFixed(1)} tweets/s → ` +
        `all ${TEST_TWEETS.toLocaleString('en')} test tweets ≈ ${fmtMin(run.testSplitMinutes)}, ` +
        `${fmtMin(run.testSplitMinutesPadded)} scaled by padding (goal ≤ ${GOAL_MINUTES} min); ` +
        `macro-F1 ${[r.firstToken && `first-token ${r.firstToken.metrics.macroF1.toFixed(3)}`, r.generate && `generated ${r.generate.metrics.macroF1.toFixed(3)}`].filter(Boolean).join(', ')}; ` +
        `pool +${run.poolAllocations} buffers`);
    }

    const { peer, skipped } = runPeer(prompts, fmt, batchSize, log);
    if (!peer) log(`PyTorch peer skipped: ${skipped}`);
    const agreement = peer ? agree(runs, peer) : null;
    if (agreement) for (const [k, v] of Object.entries(agreement)) log(`dawngrad and PyTorch agree on ${(100 * v).toFixed(1)}% of rows: ${k}`);

    const rows: Row[] = [];
    const rowsCpu: Row[] = [];
    for (const [i, { mode, label }] of MODES.entries()) {
      const r = runs[i]!;
      const p = peer?.modes[mode];
      const peerRate = p ? n / p.seconds : null;
      const notes = {
        mode,
        oursSeconds: r.seconds,
        peerSeconds: p?.seconds ?? null,
        testSplitMinutes: { ours: r.testSplitMinutes, peer: peerRate ? minutes(peerRate) : null, goal: GOAL_MINUTES },
        testSplitMinutesPadded: { ours: r.testSplitMinutesPadded, peer: peerRate ? minutes(peerRate) * padScale : null },
        macroF1: r.macroF1,
        poolAllocations: r.poolAllocations,
      };
      const name = `${label}, ${n} tweets`;
      rows.push({ case: name, unit: 'tweets/s', ours: r.tweetsPerSecond, peers: { 'pytorch-cpu': peerRate }, notes });
      // CPU time spread over the cores: what an idle machine would take (the peer's one thread counted the same way)
      rowsCpu.push({
        case: name,
        unit: 'tweets/s',
        ours: n / (r.cpuSeconds / cores),
        peers: { 'pytorch-cpu': p ? n / (p.cpu_seconds / cores) : null },
        notes: { oursCpuSeconds: r.cpuSeconds, peerCpuSeconds: p?.cpu_seconds ?? null },
      });
      if (p) {
        log(`${mode}: PyTorch ${peerRate!.toFixed(1)} tweets/s (all test tweets ≈ ${fmtMin(minutes(peerRate!))}, ` +
          `${fmtMin(minutes(peerRate!) * padScale)} scaled by padding); ` +
          `dawngrad/PyTorch = ${(r.tweetsPerSecond / peerRate!).toFixed(2)}× wall, ${(p.cpu_seconds / r.cpuSeconds).toFixed(2)}× by CPU time`);
      }
    }
    log(`load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)} on ${cores} cores`);
    return {
      rows,
      rowsCpu,
      info: {
        n,
        batchSize,
        maxNewTokens: MAX_NEW_TOKENS,
        model: MODEL,
        promptTokens: { min: Math.min(...lengths), max: Math.max(...lengths), mean: meanLen },
        paddedWidth: width,
        tokenizeMs,
        testTweets: TEST_TWEETS,
        goalMinutes: GOAL_MINUTES,
        loadavg: { start: load0, end: loadavg()[0]! },
        runs: runs.map(({ firstToken: _f, generated: _g, ...rest }) => rest),
        peer: peer ? { torch: peer.torch, threads: peer.threads, blas: peer.blas, blasLoaded: peer.blas_loaded } : { skipped },
        agreement,
      },
    };
  },
};

/** Run torch_eval.py on the same prompt ids (a temp JSON file), when /usr/bin/python3 has torch. */
function runPeer(prompts: Int32Array[], fmt: PromptFormat, batch: number, log: (l: string) => void): { peer: PeerResult | null; skipped: string | null } {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    const why = probe.error?.message ?? (probe.stderr.trim().split('\n').at(-1) || 'unknown');
    return { peer: null, skipped: `${PYTHON} cannot import torch (${why}); run bench/peers/install.sh as root` };
  }
  const dir = mkdtempSync(join(tmpdir(), 'dawngrad-eval-'));
  try {
    const file = join(dir, 'prompts.json');
    writeFileSync(file, JSON.stringify({
      prompts: prompts.map((p) => [...p]),
      first_tokens: fmt.firstTokens,
      end_token: fmt.endToken,
      batch,
      max_new: MAX_NEW_TOKENS,
      share_prefix: true, // evaluate()'s first-token path runs each batch's shared system turn once; so does the peer
      modes: MODES.map((m) => m.mode),
    }));
    log('PyTorch peer (bench/peers/torch_eval.py, 1 thread):');
    // one BLAS thread; OPENBLAS_CORETYPE / L2_SIZE are set on this machine for other work and can slow OpenBLAS
    const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    const r = spawnSync(PYTHON, [PEER, '--model', MODEL, '--prompts', file, '--json'], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`eval bench: ${PEER} failed (exit ${r.status}): ${r.stderr.trim().split('\n').at(-1)}`);
    for (const l of r.stderr.trim().split('\n').filter(Boolean)) log(`  ${l}`);
    const lines = r.stdout.trim().split('\n');
    for (const l of lines.slice(0, -1)) log(`  ${l}`);
    return { peer: JSON.parse(lines.at(-1)!) as PeerResult, skipped: null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean width a row is padded to when the prompts are sorted by length into batches of `batch` (as evaluate() does). */
function paddedWidth(lengths: number[], batch: number): number {
  const s = [...lengths].sort((a, b) => a - b);
  let total = 0;
  for (let i = 0; i < s.length; i += batch) total += Math.min(batch, s.length - i) * s[Math.min(i + batch, s.length) - 1]!;
  return total / s.length;
}

/** Fraction of rows where the two give the same first-token prediction / the same generated ids, per mode. */
function agree(runs: Run[], peer: PeerResult): Record<string, number> {
  const out: Record<string, number> = {};
  const frac = <T>(a: T[], b: T[], eq: (x: T, y: T) => boolean) => a.filter((x, i) => eq(x, b[i]!)).length / a.length;
  for (const r of runs) {
    const p = peer.modes[r.mode];
    if (!p) continue;
    if (r.firstToken && p.first_token) out[`${r.mode} first-token prediction`] = frac(r.firstToken, p.first_token, (x, y) => x === y);
    if (r.generated && p.generated) out[`${r.mode} generated ids`] = frac(r.generated, p.generated, (x, y) => x.join() === y.join());
  }
  return out;
}
