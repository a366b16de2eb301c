// @dawngrad/train: datasets, prompts, batching, AdamW and schedules, the loop, metrics, plots, checkpoints, the CLI.

// Data: TweetEval-style splits (parquet, cardiffnlp text, JSONL, CSV), seeded order and subsets.
export {
  LABEL_NAMES, NUM_CLASSES, loadSplit, detectLayout, parseLabel, take, shuffleDataset, labelCounts, proportionalQuotas,
  stratifiedSubset, type Dataset, type DataFormat, type LabelName, type LoadOptions, type SplitFiles, type StratifiedOptions,
} from './data.ts';
export { parseCsv, parseCsvObjects, type CsvOptions } from './csv.ts';
export { mulberry32, randomInt, shuffleInPlace, permutation, sampleIndices, type Rng } from './rng.ts';

// Evaluation: metrics, figures, terminal output, progress.
export {
  INVALID, confusionMatrix, confusionFromCounts, metricsFromConfusion, computeMetrics, accuracy, rowNormalised,
  type ConfusionMatrix, type ClassMetrics, type Metrics,
} from './metrics.ts';
export {
  confusionMatrixSvg, lossCurveSvg, emaSmooth, writeConfusionMatrixPlot, writeLossCurvePlot,
  type ConfusionPlotOptions, type LossSeries, type LossPlotOptions,
} from './plots.ts';
export { svgToPng, writeFigure, writeFileAtomic, findFontFiles, type FigureFiles, type PngOptions, type PngResult } from './svg.ts';
export {
  useColor, paint, stripAnsi, formatConfusionMatrix, formatMetricsSummary, formatEvaluation, type MaybeTty, type MatrixFormatOptions,
} from './terminal.ts';
export { Progress, formatDuration, formatRate, type ProgressOptions, type ProgressStream, type TickInfo } from './progress.ts';

// Training: prompts, batching, AdamW and schedules, one step, the loop, checkpoints, the run report and model card.
export { PromptFormat, DEFAULT_SYSTEM, GENERATED_TOKENS, CONTENT_FREE_TEXTS, type Example } from './prompts.ts';
export {
  trainBatch, epochBatches, balanceRows, sharedPrefixLength, largestBatchBuffer, checkBatchFits, PAD_ID, MIN_SHARED_PREFIX,
  type TrainBatch, type BatchOptions, type OrderOptions,
} from './batching.ts';
export { AdamW, type AdamWOptions } from './optim/adamw.ts';
export { lrFactor, warmupSteps, SCHEDULES, WSD_DECAY, type Schedule, type ScheduleName } from './optim/schedule.ts';
export { forwardBackward, optimizerStep, LaggedReader } from './step.ts';
export {
  evaluate, describe, labelPrior, calibratedPredictions, measuredPrior, readCalibration, calibratedLabels, CALIBRATION_FILE,
  type EvalResult, type EvalOptions, type EvalMode, type AdapterCalibration,
} from './evaluate.ts';
export { saveCheckpoint, loadCheckpoint, replaceDirAtomic, type TrainerState } from './checkpoint.ts';
export { checkRunDir, RunLock, LOCK_FILE } from './run-dir.ts';
export { runTraining, type TrainHooks } from './trainer.ts';
export {
  resolveOptions, RECIPES, BASE_DEFAULTS, defaultModelDir, defaultDataDir, CALIBRATIONS, BALANCE_MODES, AUTO_RECIPE, autoRecipe, resolveRecipe,
  type TrainOptions, type Calibration, type BalanceMode, type RecipeAdapter,
} from './options.ts';
export {
  adapterFacts, toggledFeatures, formatSubgroupMatrixConfigs, kernelVariants, gpuMayBeVisible, pickAutoRecipe, GPU_TOGGLES, TOGGLED_FEATURES,
  type AdapterFacts, type ToggledFeature,
} from './gpu-facts.ts';
export { writeRunReport, evalSummary, headline, headlineMethod, techniques, type RunSummary, type EvalSummary } from './report.ts';
export { modelCard } from './model-card.ts';
export { prepareKernels, tuneCachePath, type PrepareKernelsOptions } from './tuning.ts';
