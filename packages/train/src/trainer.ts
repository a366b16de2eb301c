// The tweet-sentiment LoRA experiment end to end, in named phases that runTraining calls in order:
//   prepare           every input checked and every split tokenised (tweets cut to --max-length) and sized against the
//                     device, the checkpoint of --resume checked, the model loaded — and only then the run directory
//                     locked and created: a refused run leaves nothing behind;
//   evaluateBefore    the untouched base model on the test split ("before");
//   attachLora        LoRA and AdamW, fresh or read back from the checkpoint of --resume;
//   trainEpochs       epochs of AdamW steps with periodic checkpoints, each epoch ending in validateAndKeepBest
//                     (validation macro-F1; the best adapter kept on the host and in adapter-best/);
//   testBest          the best adapter on the test split ("after");
//   report            summary.json, figures and the model card.
// Tests reach inside only through TrainHooks (a callback before each step and after each checkpoint).
import { existsSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { init, rt, type Tensor } from '@dawngrad/tensor';
import { detectAnomaly, checkAnomalies, type Var } from '@dawngrad/autograd';
import { loadModel, loadConfig, HfTokenizer, checkVocab, modelFingerprint, type MistralForCausalLM } from '@dawngrad/model';
import { inject, saveAdapter, readAdapter, type LoraModel } from '@dawngrad/lora';
import { loadSplit, stratifiedSubset, take, type Dataset } from './data.ts';
import { PromptFormat, GENERATED_TOKENS, checkMaxLength, type Example } from './prompts.ts';
import { epochBatches, trainBatch, checkBatchFits, balanceRows } from './batching.ts';
import { AdamW } from './optim/adamw.ts';
import { lrFactor, warmupSteps, type Schedule } from './optim/schedule.ts';
import { prepareKernels, dawnTogglesFor, runRows } from './tuning.ts';
import { forwardBackward, optimizerStep, LaggedReader } from './step.ts';
import { evaluate, measuredPrior, describe, type EvalResult, type EvalOptions } from './evaluate.ts';
import { saveCheckpoint, loadCheckpoint, checkResume, trajectoryOptions, type TrainerState } from './checkpoint.ts';
import { checkRunDir, clearRun, RunLock, writing } from './run-dir.ts';
import { Progress } from './progress.ts';
import type { TrainOptions } from './options.ts';
import { writeRunReport, sampleOutputs, type RunSummary } from './report.ts';

export interface Logger {
  (line: string): void;
}

/** Callbacks into a run, for tests and tools; the trainer has no test-only branch of its own. */
export interface TrainHooks {
  /** before optimizer step `step` (1-based) runs: may change the adapter's weights (a test writes a NaN to check the stop) */
  beforeStep?(step: number, lora: LoraModel): void | Promise<void>;
  /** after the checkpoint of step `step` is on disk (a test kills the process here, then resumes) */
  afterCheckpoint?(step: number, runDir: string): void | Promise<void>;
}

/** One evaluation split: its texts, labels and prompts (tokenised once, cut to fit), and how many were cut. */
interface EvalSplit extends Dataset {
  prompts: Int32Array[];
  cut: number;
}

/** Everything prepare() sets up, read by the phases that follow. */
interface Run {
  o: TrainOptions;
  log: Logger;
  hooks: TrainHooks;
  t0: number;
  model: MistralForCausalLM;
  fmt: PromptFormat;
  train: Example[];
  val: EvalSplit;
  test: EvalSplit;
  lock: RunLock;
  /** --resume: the checkpoint's state (checked against this run's options and base model) */
  resumed: TrainerState | null;
}

/** The trainable part, from attachLora on. */
interface Training {
  lora: LoraModel;
  params: Var[];
  names: string[];
  opt: AdamW;
  schedule: Schedule;
  state: TrainerState;
  /** on a resume: adapter-best/ as the earlier run kept it (the weights "after" is measured on unless training beats it) */
  resumedBest: Float32Array[] | null;
}

/** What training hands to the last phases. */
interface Trained {
  best: Float32Array[] | null;
  valHistory: { step: number; epoch: number; macroF1: number }[];
  /** --calibrate validation: the best epoch's validation label prior, divided out on the test split */
  bestPrior?: number[];
  trainSeconds: number;
  trainTokens: number;
}

export async function runTraining(o: TrainOptions, log: Logger = (l) => console.log(l), hooks: TrainHooks = {}): Promise<RunSummary> {
  const run = await prepare(o, log, hooks);
  let t: Training | null = null;
  try {
    const before = await evaluateBefore(run);
    t = await attachLora(run);
    const trained = await trainEpochs(run, t);
    const after = await testBest(run, t, trained);
    return await report(run, t, before, trained, after);
  } finally {
    detectAnomaly(false);
    t?.lora.dispose();
    t?.opt.dispose();
    await run.lock.release();
  }
}

// ---- prepare ------------------------------------------------------------------------------------------------------

async function prepare(o: TrainOptions, log: Logger, hooks: TrainHooks): Promise<Run> {
  const t0 = performance.now();
  // 1. the run directory and, for --resume, its checkpoint: reading only, before anything loads
  checkRunDir(o.out, o);
  const resumed = o.resume ? await checkResume(o, log) : null;
  // 2. data, tokenizer, prompts: every split tokenised now, so a chat template that raises or a sequence too long
  //    for the model stops the run here, not at the test evaluation
  // --balance down picks its rows from the whole split; otherwise --max-train keeps the first rows
  const rows = await loadSplit(o.data, 'train', o.maxTrain && o.balance !== 'down' ? { limit: o.maxTrain } : {});
  const train = o.balance && o.balance !== 'none' ? take(rows, balanceRows(rows.labels, o.balance, o.maxTrain)) : rows;
  const subset = (ds: Dataset) => (o.maxEval && o.maxEval < ds.texts.length ? stratifiedSubset(ds, o.maxEval, { seed: o.seed }) : ds);
  const valData = subset(await loadSplit(o.data, 'validation'));
  const testData = subset(await loadSplit(o.data, 'test'));
  const cfg = loadConfig(join(o.model, 'config.json'));
  const tokenizer = HfTokenizer.fromDir(o.model);
  checkVocab(tokenizer, cfg, `model ${o.model}`);
  const fmt = new PromptFormat(tokenizer, o.system);
  if (o.evalMode === 'first-token') fmt.checkFirstTokenScoring(); // refuse now, not after the first epoch
  if (o.evalMode === 'both' && fmt.firstTokenAmbiguous) log(`first-token scoring is off: ${fmt.firstTokenClash}; evaluating by generation`);
  if ((o.calibrate ?? 'none') !== 'none' && fmt.firstTokenAmbiguous) { // nothing to calibrate: the summary must not claim it
    log(`calibration is off: it divides first-token scores, and ${fmt.firstTokenClash}`);
    o = { ...o, calibrate: 'none' }; // a copy: the caller's options stay as given
  }
  const maxLength = checkMaxLength(o, fmt, cfg.maxPositionEmbeddings);
  const examples = fmt.examples(train.texts, train.labels, maxLength);
  const tokenised = (ds: Dataset): EvalSplit => {
    const p = fmt.evalPrompts(ds.texts, maxLength);
    return { ...ds, prompts: p.map((x) => x.ids), cut: p.filter((x) => x.cut).length };
  };
  const [val, test] = [tokenised(valData), tokenised(testData)];
  const cuts = ([['train', examples.filter((e) => e.cut).length], ['validation', val.cut], ['test', test.cut]] as const).filter(([, n]) => n > 0);
  if (cuts.length > 0) {
    log(`--max-length ${maxLength}: cut the tweet of ${cuts.map(([split, n]) => `${n} ${split}`).join(', ')} example(s) to fit (answers are never cut)`);
  }
  // 3. the device: the longest rows at the chosen batch sizes must fit its buffers
  dawnTogglesFor(o.precision);
  await init();
  if (o.precision === 'mixed' && !rt().ctx.hasF16 && rt().ctx.adapterClass === 'cpu') {
    log('--precision mixed: this CPU adapter has no shader-f16: training in f32'); // a GPU without it is refused by loadModel
    o = { ...o, precision: 'f32' };
  }
  const limit = rt().ctx.limits.maxStorageBufferBindingSize;
  const longest = (lens: number[]) => Math.max(1, ...lens);
  checkBatchFits(cfg, limit, Math.min(o.batchSize, examples.length), longest(examples.map((e) => e.prompt.length + e.answer.length)),
    'training row (prompt + answer)', '--batch-size');
  checkBatchFits(cfg, limit, Math.min(o.evalBatchSize, Math.max(val.texts.length, test.texts.length)),
    longest([...val.prompts, ...test.prompts].map((p) => p.length)) + GENERATED_TOKENS, 'evaluation prompt (+ answer)', '--eval-batch-size');
  const model = await loadModel(o.model, { precision: o.precision });
  log(`model ${o.model}: ${cfg.numHiddenLayers} layers, hidden ${cfg.hiddenSize}, vocab ${cfg.vocabSize} on ${rt().ctx.info.description || rt().ctx.info.device}${o.precision === 'mixed' ? ', weights in f16 (--precision mixed)' : ''}`);
  // on a GPU: the matmul tiles of this run's products, measured once per adapter (cached)
  await prepareKernels(cfg, {
    rows: runRows(o, examples.map((e) => e.prompt.length + e.answer.length), [...val.prompts, ...test.prompts].map((p) => p.length), fmt.prompt('').length),
    headRows: 2 * o.batchSize,
    f16: o.precision === 'mixed',
    log,
  });
  log(`data ${o.data}: train ${examples.length}, validation ${val.texts.length}, test ${test.texts.length}`);
  // 4. every input has passed: take the run directory (a refused run leaves nothing behind)
  const lock = await writing(`the run directory ${o.out}`, () => RunLock.acquire(o.out, log));
  try {
    checkRunDir(o.out, o); // again, under the lock: another run may have written it since the check above
    if (o.overwrite) await clearRun(o.out);
    return { o, log, hooks, t0, model, fmt, train: examples, val, test, lock, resumed };
  } catch (e) {
    await lock.release();
    throw e;
  }
}

// ---- evaluate before ----------------------------------------------------------------------------------------------

function evalOptions(run: Run, split: EvalSplit, label: string): EvalOptions {
  return {
    batchSize: run.o.evalBatchSize,
    mode: run.o.evalMode,
    prompts: split.prompts,
    progress: new Progress({ total: split.texts.length, label, unit: 'tweets' }),
    calibration: run.o.calibrate,
  };
}

/** --calibrate validation: the label prior the model shows now on the validation split (first-token scoring only). */
function validationPrior(run: Run): Promise<number[]> {
  return measuredPrior(run.model, run.fmt, run.val.texts, run.val.labels, evalOptions(run, run.val, 'prior validation'));
}

/** "before": the untouched base model on the test split (not on a resume: that run measured it already). */
async function evaluateBefore(run: Run): Promise<EvalResult | null> {
  if (run.o.resume || !run.o.evalBefore) return null;
  // --calibrate validation: the base model's own validation prior, so "before" is measured the way "after" is
  const prior = run.o.calibrate === 'validation' ? await validationPrior(run) : undefined;
  const before = await evaluate(run.model, run.fmt, run.test.texts, run.test.labels, { ...evalOptions(run, run.test, 'eval before'), prior });
  run.log(`before: ${describe(before)}`);
  return before;
}

// ---- attach LoRA -------------------------------------------------------------------------------------------------

/** LoRA, AdamW, the schedule and the trainer state — fresh, or read back from the checkpoint of --resume. */
async function attachLora(run: Run): Promise<Training> {
  const { o, log, model, resumed } = run;
  const lora = inject(model, {
    r: o.r, lora_alpha: o.alpha, lora_dropout: o.dropout, target_modules: o.targets, seed: o.seed, base_model_name_or_path: o.model,
    use_rslora: o.rslora ?? false,
  });
  const params = lora.parameters();
  const names = lora.namedParameters().map((p) => p.name);
  const opt = new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay, maxGradNorm: o.clip, packed: lora.packed() });
  const stepsPerEpoch = Math.ceil(Math.ceil(run.train.length / o.batchSize) / o.gradAccum);
  const totalSteps = o.maxSteps ? Math.min(o.maxSteps, stepsPerEpoch * o.epochs) : stepsPerEpoch * o.epochs;
  const schedule: Schedule = { name: o.schedule, totalSteps, warmupSteps: warmupSteps(totalSteps, o.warmup) };
  log(`LoRA r ${o.r}, alpha ${o.alpha} on ${lora.layers.length} layers: ${lora.numTrainable().toLocaleString('en')} trainable values; ` +
      `${totalSteps} steps of ${o.batchSize * o.gradAccum} examples, lr ${o.lr} ${o.schedule}`);
  // the next checkpoint records what this run uses: its options and its base model
  const identity = { options: trajectoryOptions(o), model: modelFingerprint(o.model) };
  let state: TrainerState = { step: 0, epoch: 0, batchInEpoch: 0, seed: o.seed, history: [], bestValF1: null, ...identity };
  let resumedBest: Float32Array[] | null = null;
  const factorsOf = async (dir: string) => {
    const disk = await readAdapter(dir, model);
    return lora.layers.flatMap((l) => [disk.factors.get(l.path)!.a, disk.factors.get(l.path)!.b]);
  };
  if (resumed) {
    const ck = await loadCheckpoint(o.out, names);
    restore(params, await factorsOf(ck.adapterDir));
    opt.loadState(ck.moments);
    state = { ...ck.state, ...identity };
    const bestDir = join(o.out, 'adapter-best');
    if (state.bestValF1 !== null && existsSync(bestDir)) resumedBest = await factorsOf(bestDir);
    log(`resumed at step ${state.step} (epoch ${state.epoch}, batch ${state.batchInEpoch})`);
  }
  return { lora, params, names, opt, schedule, state, resumedBest };
}

// ---- train epochs -------------------------------------------------------------------------------------------------

async function trainEpochs(run: Run, t: Training): Promise<Trained> {
  const { o, hooks } = run;
  const { lora, names, opt, schedule, state } = t;
  const metricsPath = join(o.out, 'metrics.jsonl');
  const where = `metrics.jsonl in ${o.out}`;
  await writing(where, () => writeFile(metricsPath, state.history.map((h) => JSON.stringify(h) + '\n').join('')), run.resumed !== null);
  const checkpoint = async () => {
    await writing(`the checkpoint in ${o.out}`, async () => saveCheckpoint(o.out, state, await opt.state(), names, (d) => saveAdapter(lora, d)), true);
    await hooks.afterCheckpoint?.(state.step, o.out);
  };
  detectAnomaly(o.detectAnomaly === true);
  const trained: Trained = { best: t.resumedBest, bestPrior: state.bestPrior ?? undefined, valHistory: [], trainSeconds: 0, trainTokens: 0 };
  const reader = new LaggedReader();
  const normReader = new LaggedReader();
  // tokens/s of a step = its tokens over the time since the previous step's loss arrived (losses are read one step late)
  const stepTokens = new Map<number, number>();
  let tSince = performance.now();
  const trainStart = performance.now();
  const progress = new Progress({ total: schedule.totalSteps, label: 'train', unit: 'steps', initial: state.step });
  const record = async (loss: { step: number; value: number } | null, norm: { step: number; value: number } | null) => {
    if (!loss) return;
    if (!Number.isFinite(loss.value) || (norm && !Number.isFinite(norm.value))) {
      throw new Error(`non-finite ${Number.isFinite(loss.value) ? 'gradient norm' : 'loss'} at step ${loss.step}; ` +
        `the last good checkpoint is in ${join(o.out, 'checkpoint')}`);
    }
    const now = performance.now();
    const h = { step: loss.step, loss: loss.value, lr: o.lr * lrFactor(schedule, loss.step - 1), gradNorm: norm?.value ?? NaN,
      tokensPerSecond: (stepTokens.get(loss.step) ?? 0) / ((now - tSince) / 1000) };
    stepTokens.delete(loss.step);
    tSince = now;
    state.history.push({ step: h.step, loss: h.loss, lr: h.lr, gradNorm: h.gradNorm });
    await writing(where, () => appendFile(metricsPath, JSON.stringify(h) + '\n'), true);
  };
  const drain = async () => record(await reader.drain(), await normReader.drain());

  for (let epoch = state.epoch; epoch < o.epochs; epoch++) {
    const batches = epochBatches(run.train, epoch, { batchSize: o.batchSize, seed: o.seed, bucketWindow: o.bucketWindow });
    for (let bi = epoch === state.epoch ? state.batchInEpoch : 0; bi < batches.length; bi += o.gradAccum) {
      if (state.step >= schedule.totalSteps) break; // --max-steps: this epoch ends early, with its validation
      await hooks.beforeStep?.(state.step + 1, lora);
      const { loss, tokens } = await accumulate(run, state.step + 1, batches.slice(bi, bi + o.gradAccum));
      optimizerStep(opt, o.lr * lrFactor(schedule, state.step));
      state.step++;
      state.epoch = epoch;
      state.batchInEpoch = bi + o.gradAccum;
      stepTokens.set(state.step, tokens);
      trained.trainTokens += tokens;
      await record(await reader.push(state.step, loss), await normReader.push(state.step, opt.norm.reshape([2])));
      progress.tick(1, { loss: state.history.at(-1)?.loss, tokens });
      if (o.checkpointEvery > 0 && state.step % o.checkpointEvery === 0) {
        await drain();
        await checkpoint();
      }
    }
    await drain();
    state.epoch = epoch + 1;
    state.batchInEpoch = 0;
    await validateAndKeepBest(run, t, trained, epoch);
    await checkpoint();
    if (state.step >= schedule.totalSteps) break;
  }
  await drain();
  progress.done();
  trained.trainSeconds = (performance.now() - trainStart) / 1000;
  return trained;
}

/** Forward + backward of one optimizer step's micro-batches (gradients accumulate): the last loss and the tokens. */
async function accumulate(run: Run, step: number, micro: number[][]): Promise<{ loss: Tensor; tokens: number }> {
  const { o, model } = run;
  let loss = null;
  let tokens = 0;
  for (const idx of micro) {
    const batch = trainBatch(idx.map((i) => run.train[i]!), { sharePrefix: true }); // the system prompt runs once
    tokens += batch.tokens;
    loss?.dispose();
    loss = forwardBackward(model, batch, 1 / o.gradAccum, o.labelSmoothing ?? 0);
    batch.dispose();
    if (o.detectAnomaly) {
      await checkAnomalies().catch((e: unknown) => {
        throw new Error(`step ${step}: ${(e as Error).message}; the last good checkpoint is in ${join(o.out, 'checkpoint')}`);
      });
    }
  }
  return { loss: loss!, tokens };
}

// ---- validate + keep best ----------------------------------------------------------------------------------------

/**
 * Validation macro-F1 at an epoch end (first-token scoring — calibrated with --calibrate — or generation when the
 * tokenizer gives two label words the same first token); the best adapter so far is kept on the host and written to
 * adapter-best/.
 */
async function validateAndKeepBest(run: Run, t: Training, trained: Trained, epoch: number): Promise<void> {
  const { o, fmt } = run;
  const { lora, state } = t;
  const mode = fmt.firstTokenAmbiguous ? 'generate' : 'first-token';
  lora.eval(); // no dropout while measuring
  const v = await evaluate(run.model, fmt, run.val.texts, run.val.labels, { ...evalOptions(run, run.val, 'eval validation'), mode });
  lora.train();
  const f1 = (v.calibrated ?? v.firstToken ?? v.generate)!.metrics.macroF1;
  trained.valHistory.push({ step: state.step, epoch: epoch + 1, macroF1: f1 });
  run.log(`epoch ${epoch + 1}: validation macro-F1 ${f1.toFixed(4)} (${mode}${v.calibrated ? `, calibrated by the ${v.calibrated.method} prior` : ''})`);
  if (state.bestValF1 === null || f1 > state.bestValF1) {
    state.bestValF1 = f1;
    trained.best = await snapshot(t.params);
    trained.bestPrior = v.calibrated?.prior;
    state.bestPrior = trained.bestPrior ?? null; // the next checkpoint keeps it for a resume
    await writing(`adapter-best in ${o.out}`, () => saveAdapter(lora, join(o.out, 'adapter-best')), true);
  }
}

/** Copy the adapter's weights to the host (to keep the best one without touching the disk). */
async function snapshot(params: Var[]): Promise<Float32Array[]> {
  return Promise.all(params.map(async (p) => (await p.data.toArray()) as Float32Array));
}

function restore(params: Var[], snap: Float32Array[]): void {
  params.forEach((p, i) => p.data.write(snap[i]!));
}

// ---- test ---------------------------------------------------------------------------------------------------------

/** adapter-last/ as trained, then the best adapter (by validation) on the test split: "after". */
async function testBest(run: Run, t: Training, trained: Trained): Promise<EvalResult> {
  await writing(`adapter-last in ${run.o.out}`, () => saveAdapter(t.lora, join(run.o.out, 'adapter-last')), true);
  if (trained.best) restore(t.params, trained.best);
  t.lora.eval();
  // --calibrate validation divides out the best epoch's validation prior (measured again, on the best weights, when a
  // checkpoint from before bestPrior lost it)
  const prior = run.o.calibrate === 'validation' ? trained.bestPrior ?? (await validationPrior(run)) : undefined;
  const after = await evaluate(run.model, run.fmt, run.test.texts, run.test.labels, { ...evalOptions(run, run.test, 'eval test'), prior });
  run.log(`after: ${describe(after)}`);
  return after;
}

// ---- report -------------------------------------------------------------------------------------------------------

async function report(run: Run, t: Training, before: EvalResult | null, trained: Trained, after: EvalResult): Promise<RunSummary> {
  const { o } = run;
  return writing(`the run report in ${o.out}`, () =>
    writeRunReport(
      o,
      {
        before,
        after,
        samples: sampleOutputs(after, run.test, run.fmt, o.seed),
        history: t.state.history,
        valHistory: trained.valHistory,
        lora: t.lora,
        trainSeconds: trained.trainSeconds,
        trainTokens: trained.trainTokens,
        wallSeconds: (performance.now() - run.t0) / 1000,
        adapter: rt().ctx.info,
        command: o.command ?? 'dawngrad train',
      },
      run.log,
    ),
  );
}

export type { LoraModel };
