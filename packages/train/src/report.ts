// What a run leaves behind: summary.json (everything measured), confusion-matrix heatmaps before and after, the loss
// curve, the terminal rendering — and the model card, written from summary.json alone.
import { join } from 'node:path';
import { writeConfusionMatrixPlot, writeLossCurvePlot } from './plots.ts';
import { writeFileAtomic } from './svg.ts';
import { formatEvaluation } from './terminal.ts';
import type { EvalResult } from './evaluate.ts';
import type { TrainOptions } from './options.ts';
import type { LoraModel } from '@dawngrad/lora';
import type { DeviceInfo } from '@dawngrad/tensor';
import type { Metrics } from './metrics.ts';
import { modelCard } from './model-card.ts';
import { LABEL_NAMES, type Dataset } from './data.ts';
import { mulberry32 } from './rng.ts';
import type { PromptFormat } from './prompts.ts';
import { CALIBRATION_FILE } from './evaluate.ts';

export interface EvalSummary {
  n: number;
  seconds: number;
  tokensPerSecond: number;
  generate?: { macroF1: number; invalidRate: number; metrics: Metrics };
  firstToken?: { macroF1: number; metrics: Metrics };
  /** calibrated first-token scoring (--calibrate): the method, the label prior divided out, the result */
  calibrated?: { method: string; prior: number[]; macroF1: number; metrics: Metrics };
  /** a few test tweets (seeded draw), their label and what the model answered */
  samples?: { text: string; expected: string; output: string }[];
}

export interface RunSummary {
  recipe: string;
  command: string;
  options: TrainOptions;
  model: string;
  lora: { r: number; alpha: number; dropout: number; targetModules: string[] | string; layers: number; trainable: number };
  steps: number;
  trainSeconds: number;
  wallSeconds: number;
  trainTokensPerSecond: number;
  before: EvalSummary | null;
  after: EvalSummary;
  validation: { step: number; epoch: number; macroF1: number }[];
  finalLoss: number | null;
  hardware: { adapter: string; cpus: number };
  files: Record<string, string>;
  /** the quality knobs this run used beyond the plain recipe (label smoothing, class balance, calibration, rsLoRA, …) */
  techniques: string[];
}

export function evalSummary(r: EvalResult, samples?: EvalSummary['samples']): EvalSummary {
  return {
    n: r.n,
    seconds: r.seconds,
    tokensPerSecond: r.tokens / Math.max(1e-9, r.seconds),
    generate: r.generate && { macroF1: r.generate.metrics.macroF1, invalidRate: r.generate.invalidRate, metrics: r.generate.metrics },
    firstToken: r.firstToken && { macroF1: r.firstToken.metrics.macroF1, metrics: r.firstToken.metrics },
    calibrated: r.calibrated && { method: r.calibrated.method, prior: r.calibrated.prior, macroF1: r.calibrated.metrics.macroF1, metrics: r.calibrated.metrics },
    samples,
  };
}

/** The headline metrics of an evaluation: calibrated first-token scoring if the run calibrates, else generation if it
 *  ran, else first-token scoring. */
export function headline(e: EvalSummary): Metrics {
  return (e.calibrated ?? e.generate ?? e.firstToken)!.metrics;
}

/** How the headline was measured, in words (the model card, the summary). */
export function headlineMethod(e: EvalSummary): string {
  if (e.calibrated) return `first-token scoring calibrated by the ${e.calibrated.method === 'content-free' ? 'content-free' : 'validation split\'s'} label prior`;
  return e.generate ? 'greedy generation of the answer, first word parsed' : 'first-token scoring';
}

/** The quality knobs a run uses beyond the plain recipe, in words (RunSummary.techniques). */
export function techniques(o: TrainOptions): string[] {
  const t: string[] = [];
  if (o.labelSmoothing) t.push(`label smoothing ${o.labelSmoothing}`);
  if (o.balance === 'down') t.push('class-balanced rows (the first rows of each class in equal numbers)');
  if (o.balance === 'up') t.push('class-balanced rows (the rarer classes repeated up to the largest)');
  if (o.calibrate === 'content-free') t.push('calibrated first-token scoring (the label prior on content-free prompts divided out)');
  if (o.calibrate === 'validation') t.push("calibrated first-token scoring (the validation split's label prior divided out)");
  if (o.rslora) t.push('rsLoRA scaling (alpha/√r)');
  if (o.schedule === 'wsd') t.push('warm-up–stable–decay lr schedule');
  if (Array.isArray(o.targets) && o.targets.includes('lm_head')) t.push('LoRA on lm_head');
  return t;
}

export interface ReportInput {
  before: EvalResult | null;
  after: EvalResult;
  samples: EvalSummary['samples'];
  history: { step: number; loss: number }[];
  valHistory: RunSummary['validation'];
  lora: LoraModel;
  trainSeconds: number;
  trainTokens: number;
  wallSeconds: number;
  adapter: DeviceInfo;
  command: string;
}

export async function writeRunReport(o: TrainOptions, r: ReportInput, log: (l: string) => void): Promise<RunSummary> {
  const files: Record<string, string> = {};
  const after = evalSummary(r.after, r.samples);
  const before = r.before ? evalSummary(r.before) : null;
  if (before) {
    const f = await writeConfusionMatrixPlot(join(o.out, 'confusion_before'), headline(before).matrix, { title: 'before (base model)' });
    files.confusionBeforePng = 'confusion_before.png';
    files.confusionBeforeSvg = 'confusion_before.svg';
    if (f.warning) log(f.warning);
  }
  const f = await writeConfusionMatrixPlot(join(o.out, 'confusion_after'), headline(after).matrix, { title: 'after LoRA fine-tuning' });
  if (f.warning) log(f.warning);
  files.confusionAfterPng = 'confusion_after.png';
  files.confusionAfterSvg = 'confusion_after.svg';
  if (r.history.length > 0) {
    await writeLossCurvePlot(join(o.out, 'loss'), { steps: r.history.map((h) => h.step), losses: r.history.map((h) => h.loss) }, { title: 'training loss' });
    files.lossPng = 'loss.png';
    files.lossSvg = 'loss.svg';
  }
  files.metrics = 'metrics.jsonl';
  files.adapterBest = 'adapter-best';
  files.adapterLast = 'adapter-last';
  if (after.calibrated) files.calibration = `adapter-best/${CALIBRATION_FILE}`;
  const c = r.lora.config;
  const summary: RunSummary = {
    recipe: o.recipe,
    command: r.command,
    options: o,
    model: o.model,
    lora: { r: c.r, alpha: c.lora_alpha, dropout: c.lora_dropout, targetModules: r.lora.targetModules, layers: r.lora.layers.length, trainable: r.lora.numTrainable() },
    steps: r.history.at(-1)?.step ?? 0,
    trainSeconds: r.trainSeconds,
    wallSeconds: r.wallSeconds,
    trainTokensPerSecond: r.trainTokens / Math.max(1e-9, r.trainSeconds),
    before,
    after,
    validation: r.valHistory,
    finalLoss: r.history.at(-1)?.loss ?? null,
    hardware: { adapter: [r.adapter.vendor, r.adapter.device, r.adapter.description].filter(Boolean).join(' / '), cpus: (await import('node:os')).cpus().length },
    files,
    techniques: techniques(o),
  };
  await writeFileAtomic(join(o.out, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
  await writeFileAtomic(join(o.out, 'adapter-best', 'README.md'), modelCard(summary, '..'));
  if (after.calibrated) { // eval and predict with this adapter score the way the run did
    const c = { method: after.calibrated.method, prior: after.calibrated.prior, labels: [...LABEL_NAMES] };
    await writeFileAtomic(join(o.out, 'adapter-best', CALIBRATION_FILE), JSON.stringify(c, null, 1) + '\n');
  }
  if (before) log(`\nbefore (base model):\n${formatEvaluation(headline(before).matrix)}`);
  log(`\nafter:\n${formatEvaluation(headline(after).matrix)}`);
  return summary;
}

/** A few test tweets picked by a seeded draw (not cherry-picked), with the label and what the model said. */
export function sampleOutputs(r: EvalResult, ds: Dataset, fmt: PromptFormat, seed: number, n = 6) {
  if (!r.generate) return [];
  const rand = mulberry32(seed + 17);
  const picks = new Set<number>();
  while (picks.size < Math.min(n, ds.texts.length)) picks.add(Math.floor(rand() * ds.texts.length));
  return [...picks].map((i) => ({
    text: ds.texts[i]!,
    expected: LABEL_NAMES[ds.labels[i]!]!,
    output: fmt.tokenizer.decode(r.generate!.outputs[i]!, { skipSpecialTokens: false }),
  }));
}
