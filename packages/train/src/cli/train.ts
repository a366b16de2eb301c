// dawngrad train / eval (predict is in predict.ts).
// Only the light modules load at the top: flags are parsed and refused before the GPU stack (Dawn, the model, the
// trainer) is imported, so a usage error costs a fraction of a second and starts nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, num, CliError, precisionFlag, type Command } from './args.ts';
import { resolveOptions, RECIPES, AUTO_RECIPE, TRAIN_OPTION_KEYS, defaultModelDir, defaultDataDir, CALIBRATIONS, BALANCE_MODES, type TrainOptions, type Calibration, type BalanceMode } from '../options.ts';
import { SCHEDULES, type ScheduleName } from '../optim/schedule.ts';
import type { EvalMode } from '../evaluate.ts';
import { checkMaxLength, type PromptFormat } from '../prompts.ts';

/** The GPU stack and everything that needs it, loaded once the flags have passed. */
export async function heavy() {
  const [tensor, model, lora, trainer, evaluate, prompts, data, terminal, progress, batching, gpuFacts] = await Promise.all([
    import('@dawngrad/tensor'),
    import('@dawngrad/model'),
    import('@dawngrad/lora'),
    import('../trainer.ts'),
    import('../evaluate.ts'),
    import('../prompts.ts'),
    import('../data.ts'),
    import('../terminal.ts'),
    import('../progress.ts'),
    import('../batching.ts'),
    import('../gpu-facts.ts'),
  ]);
  const tuning = await import('../tuning.ts');
  return { ...tensor, ...model, ...lora, ...trainer, ...evaluate, ...prompts, ...data, ...terminal, ...progress, ...batching, ...tuning, ...gpuFacts };
}

const TRAIN_FLAGS = {
  config: { type: 'string' },
  recipe: { type: 'string' },
  model: { type: 'string' },
  data: { type: 'string' },
  targets: { type: 'string' },
  r: { type: 'string' },
  alpha: { type: 'string' },
  dropout: { type: 'string' },
  lr: { type: 'string' },
  'weight-decay': { type: 'string' },
  schedule: { type: 'string' },
  warmup: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'grad-accum': { type: 'string' },
  clip: { type: 'string' },
  'max-train': { type: 'string' },
  'max-eval': { type: 'string' },
  'max-steps': { type: 'string' },
  'eval-batch-size': { type: 'string' },
  'eval-mode': { type: 'string' },
  'no-eval-before': { type: 'boolean' },
  'bucket-window': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  system: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  overwrite: { type: 'boolean' },
  'max-length': { type: 'string' },
  'detect-anomaly': { type: 'boolean' },
  precision: { type: 'string' },
  'label-smoothing': { type: 'string' },
  balance: { type: 'string' },
  calibrate: { type: 'string' },
  rslora: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const RECIPE_NAMES = [AUTO_RECIPE, ...Object.keys(RECIPES)];

const TRAIN_USAGE = `usage: dawngrad train [--recipe ${RECIPE_NAMES.join('|')}] [--config run.json] [--model DIR] [--data DIR]
  [--targets k_proj,v_proj|all-linear] [--r 8] [--alpha 16] [--dropout 0] [--lr 1e-3] [--weight-decay 0.01]
  [--schedule ${SCHEDULES.join('|')}] [--warmup 0.1] [--epochs 1] [--batch-size 16] [--grad-accum 1] [--clip 1]
  [--max-train N] [--max-eval N] [--max-steps N] [--eval-batch-size 64] [--eval-mode both|first-token|generate]
  [--no-eval-before] [--bucket-window 16] [--checkpoint-every 200] [--system TEXT] [--seed 0] [--max-length N]
  [--out DIR] [--resume | --overwrite] [--precision f32|mixed] [--detect-anomaly]  (debug: name the first op that makes a NaN/Inf; slow)
  --precision mixed: the frozen weights in f16 and f16 matmuls summed in f32 (tensor cores on a GPU that has them)
  --out must be absent or empty unless --resume (continue the run in it) or --overwrite (replace that run);
  --max-length (default: the model's max_position_embeddings) cuts longer tweets, never the answer
  [--label-smoothing 0] [--balance ${BALANCE_MODES.join('|')}] [--calibrate ${CALIBRATIONS.join('|')}] [--rslora]
defaults: --model ${defaultModelDir()} --data ${defaultDataDir()}, recipe auto (full on a discrete GPU, quick elsewhere)`;

function evalMode(v: string | undefined): EvalMode | undefined {
  if (v === undefined) return undefined;
  if (v !== 'both' && v !== 'first-token' && v !== 'generate') throw new CliError(`--eval-mode must be both, first-token or generate, got '${v}'`);
  return v;
}

/** A flag whose value must be one of `allowed` (undefined when absent). */
function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new CliError(`--${flag} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/** The options as given (flags over --config), checked before any GPU work; `auto`: the recipe waits for the adapter. */
function trainOptions(argv: string[]): { over: Partial<TrainOptions>; auto: boolean } {
  const { values: v } = parse('train', argv, TRAIN_FLAGS);
  if (v.help) {
    console.log(TRAIN_USAGE);
    process.exit(0);
  }
  let fromFile: Partial<TrainOptions> = {};
  if (v.config) {
    try {
      fromFile = JSON.parse(readFileSync(v.config, 'utf8'));
    } catch (e) {
      throw new CliError(`--config ${v.config}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) throw new CliError(`--config ${v.config}: expected a JSON object`);
    const unknown = Object.keys(fromFile).filter((k) => !(TRAIN_OPTION_KEYS as readonly string[]).includes(k));
    if (unknown.length) {
      throw new CliError(`--config ${v.config}: unknown option ${JSON.stringify(unknown[0])} (options: ${TRAIN_OPTION_KEYS.join(', ')})`);
    }
  }
  const n = (flag: keyof typeof TRAIN_FLAGS, check: Parameters<typeof num>[4] = {}) => {
    const raw = v[flag] as string | undefined;
    return raw === undefined ? undefined : num('train', flag, raw, 0, check);
  };
  const schedule = v.schedule as ScheduleName | undefined;
  if (schedule !== undefined && !SCHEDULES.includes(schedule)) throw new CliError(`--schedule must be one of ${SCHEDULES.join(', ')}, got '${schedule}'`);
  if (v.recipe !== undefined && !RECIPE_NAMES.includes(v.recipe)) throw new CliError(`--recipe must be one of ${RECIPE_NAMES.join(', ')}, got '${v.recipe}'`);
  const targets = v.targets === undefined ? undefined : v.targets === 'all-linear' ? 'all-linear' : v.targets.split(',').map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(targets) && targets.length === 0) throw new CliError('--targets is empty');
  // flags override the --config file, which overrides the recipe (an absent flag must not erase a file value)
  const flags: Partial<TrainOptions> = {
    recipe: v.recipe,
    model: v.model,
    data: v.data,
    out: v.out,
    targets,
    r: n('r', { int: true, min: 1 }),
    alpha: n('alpha', { minExclusive: 0 }),
    dropout: n('dropout', { min: 0, max: 0.99 }),
    lr: n('lr', { minExclusive: 0 }),
    weightDecay: n('weight-decay', { min: 0 }),
    schedule,
    warmup: n('warmup', { min: 0, max: 0.99 }),
    epochs: n('epochs', { int: true, min: 1 }),
    batchSize: n('batch-size', { int: true, min: 1 }),
    gradAccum: n('grad-accum', { int: true, min: 1 }),
    clip: n('clip', { min: 0 }),
    maxTrain: n('max-train', { int: true, min: 1 }),
    maxEval: n('max-eval', { int: true, min: 1 }),
    maxSteps: n('max-steps', { int: true, min: 1 }),
    evalBatchSize: n('eval-batch-size', { int: true, min: 1 }),
    evalMode: evalMode(v['eval-mode']),
    evalBefore: v['no-eval-before'] ? false : undefined,
    precision: precisionFlag('train', v.precision),
    bucketWindow: n('bucket-window', { int: true, min: 0 }),
    checkpointEvery: n('checkpoint-every', { int: true, min: 0 }),
    system: v.system,
    seed: n('seed', { int: true, min: 0 }),
    resume: v.resume ? true : undefined,
    overwrite: v.overwrite ? true : undefined,
    maxLength: n('max-length', { int: true, min: 1 }),
    detectAnomaly: v['detect-anomaly'] ? true : undefined,
    labelSmoothing: n('label-smoothing', { min: 0, max: 0.99 }),
    balance: oneOf<BalanceMode>('balance', v.balance, BALANCE_MODES),
    calibrate: oneOf<Calibration>('calibrate', v.calibrate, CALIBRATIONS),
    rslora: v.rslora ? true : undefined,
    command: ['dawngrad', 'train', ...argv].map((a) => (/^[\w./:,=@+-]+$/.test(a) ? a : JSON.stringify(a))).join(' '),
  };
  const over: Partial<TrainOptions> = { ...fromFile, ...Object.fromEntries(Object.entries(flags).filter(([, x]) => x !== undefined)) };
  if (over.resume && !over.out) throw new CliError('--resume needs --out DIR (the run to continue)');
  const auto = (over.recipe ?? AUTO_RECIPE) === AUTO_RECIPE;
  // every value is checked now, before Dawn starts; `auto` is checked with quick's numbers (each recipe's are valid)
  checked(() => resolveOptions({ ...over, recipe: auto ? 'quick' : over.recipe }));
  return { over, auto };
}

function checked<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

export const train: Command = {
  summary: 'LoRA fine-tune the model on tweet sentiment (default: the shared tiny model, the recipe sized for the adapter)',
  async run(argv, ctx) {
    const { over, auto } = trainOptions(argv);
    const { runTraining, dispose, pickAutoRecipe } = await heavy();
    try {
      let recipe = over.recipe;
      if (auto) {
        const pick = await pickAutoRecipe();
        recipe = pick.recipe;
        console.log(`dawngrad train: recipe auto → ${pick.recipe}: ${pick.reason} (--recipe ${Object.keys(RECIPES).join('|')} chooses)`);
      }
      const o = checked(() => resolveOptions({ ...over, recipe }));
      console.log(`dawngrad train: recipe ${o.recipe} → ${o.out}`);
      const s = await runTraining(o, undefined, ctx?.trainHooks);
      const { headline } = await import('../report.ts');
      const b = s.before ? headline(s.before).macroF1.toFixed(4) : '—';
      const a = headline(s.after).macroF1.toFixed(4);
      console.log(`\ntest macro-F1 ${b} → ${a}; wall ${s.wallSeconds.toFixed(0)} s, training ${s.trainTokensPerSecond.toFixed(0)} tokens/s`);
      console.log(`run directory: ${o.out} (summary.json, metrics.jsonl, confusion_*.png|svg, loss.png|svg, adapter-best/, adapter-last/)`);
      return 0;
    } finally {
      dispose();
    }
  },
};

const EVAL_FLAGS = {
  model: { type: 'string' },
  adapter: { type: 'string' },
  data: { type: 'string' },
  split: { type: 'string' },
  'max-eval': { type: 'string' },
  'batch-size': { type: 'string' },
  mode: { type: 'string' },
  seed: { type: 'string' },
  'max-length': { type: 'string' },
  precision: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const evalCmd: Command = {
  summary: 'evaluate a model (+ adapter) on a split: macro-F1, per-class scores, confusion matrix',
  async run(argv) {
    const { values: v } = parse('eval', argv, EVAL_FLAGS);
    if (v.help) {
      console.log('usage: dawngrad eval [--model DIR] [--adapter DIR] [--data DIR] [--split test] [--max-eval N] [--batch-size 64] [--mode both|first-token|generate] [--max-length N] [--precision f32|mixed]');
      return 0;
    }
    const split = v.split ?? 'test';
    if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(split)) throw new CliError(`eval: --split must be a split name like test or validation, got '${split}'`);
    const maxEval = v['max-eval'] === undefined ? undefined : num('eval', 'max-eval', v['max-eval'], 0, { int: true, min: 1 });
    const bs = num('eval', 'batch-size', v['batch-size'], 64, { int: true, min: 1 });
    const mode = evalMode(v.mode) ?? 'both';
    const seed = num('eval', 'seed', v.seed, 0, { int: true, min: 0 });
    const maxLength = v['max-length'] === undefined ? undefined : num('eval', 'max-length', v['max-length'], 0, { int: true, min: 1 });
    const modelDir = v.model ?? defaultModelDir();
    const precision = precisionFlag('eval', v.precision) ?? 'f32';
    const { loadSplit, stratifiedSubset, init, dispose, evaluate, Progress, describe, formatEvaluation, dawnTogglesFor, readCalibration } = await heavy();
    const cal = v.adapter && mode !== 'generate' ? readCalibration(v.adapter) : null; // a calibrated run's adapter scores as the run did
    let ds = await loadSplit(v.data ?? defaultDataDir(), split);
    if (maxEval && maxEval < ds.texts.length) ds = stratifiedSubset(ds, maxEval, { seed });
    const { fmt, cfg } = await promptFormat(modelDir);
    if (mode === 'both' && fmt.firstTokenAmbiguous) console.error(`eval: first-token scoring is off: ${fmt.firstTokenClash}; evaluating by generation`);
    const fitted = fmt.evalPrompts(ds.texts, fitLength('eval', maxLength, cfg.maxPositionEmbeddings, fmt));
    const cut = fitted.filter((p) => p.cut).length;
    if (cut > 0) console.error(`eval: cut ${cut} tweet(s) to fit ${maxLength ?? cfg.maxPositionEmbeddings} positions`);
    dawnTogglesFor(precision);
    await init();
    try {
      const model = await loadWithAdapter(modelDir, v.adapter, precision);
      const r = await evaluate(model, fmt, ds.texts, ds.labels, {
        batchSize: bs, mode, prompts: fitted.map((p) => p.ids), progress: new Progress({ total: ds.texts.length, label: 'eval', unit: 'tweets' }),
        ...(cal && { calibration: cal.method, prior: cal.prior }),
      });
      console.log(describe(r));
      console.log(formatEvaluation((r.calibrated ?? r.generate ?? r.firstToken)!.metrics.matrix));
      return 0;
    } finally {
      dispose();
    }
  },
};

/** The tokenizer, prompt format and config of a model directory, checked against each other (no GPU). */
export async function promptFormat(modelDir: string) {
  const { HfTokenizer, checkVocab, loadConfig, PromptFormat } = await heavy();
  const tokenizer = HfTokenizer.fromDir(modelDir);
  const cfg = loadConfig(join(modelDir, 'config.json'));
  checkVocab(tokenizer, cfg, `model ${modelDir}`); // before any weight reaches the GPU
  return { tokenizer, fmt: new PromptFormat(tokenizer), cfg };
}

/** The longest sequence to allow: --max-length (at most max_position_embeddings) or the model's limit (the trainer's rule). */
export function fitLength(command: string, maxLength: number | undefined, maxPositions: number, fmt: PromptFormat): number {
  try {
    return checkMaxLength({ maxLength }, fmt, maxPositions);
  } catch (e) {
    throw new CliError(`${command}: ${(e as Error).message}`);
  }
}

/** The model on the GPU, with the adapter (if any) plugged in, in eval mode. */
export async function loadWithAdapter(modelDir: string, adapter: string | undefined, precision: 'f32' | 'mixed' = 'f32') {
  const { loadModel, loadAdapter } = await heavy();
  const model = await loadModel(modelDir, { precision });
  if (adapter) (await loadAdapter(adapter, model)).eval();
  return model;
}
