// Learning-rate schedules as multipliers of the base lr at optimizer step s (0-based), each with linear warm-up.
// 'linear' is the reference run's (shared/models/tweet-mistral-tiny/pretrain.py): min((s+1)/warm, (total-s)/(total-warm)).
// 'wsd' (warm-up, stable, decay) holds the full lr and decays linearly to 0 over the last WSD_DECAY of the steps only:
// min((s+1)/warm, (total-s)/floor(total·WSD_DECAY)) — a short run spends more of its steps at the full lr.

export type ScheduleName = 'constant' | 'linear' | 'cosine' | 'wsd';
export const SCHEDULES: readonly ScheduleName[] = ['constant', 'linear', 'cosine', 'wsd'];
/** the fraction of the steps the 'wsd' schedule decays over */
export const WSD_DECAY = 0.2;

export interface Schedule {
  name: ScheduleName;
  totalSteps: number;
  warmupSteps: number;
}

/** warm-up steps for a fraction of the run (the reference: max(1, floor(total/10)) for 0.1). */
export function warmupSteps(totalSteps: number, fraction: number): number {
  if (fraction <= 0) return 0;
  return Math.max(1, Math.floor(totalSteps * fraction));
}

/** The lr multiplier at step s. */
export function lrFactor(s: Schedule, step: number): number {
  const { totalSteps: total, warmupSteps: warm } = s;
  const up = warm > 0 ? Math.min(1, (step + 1) / warm) : 1;
  if (s.name === 'constant') return up;
  if (s.name === 'wsd') return Math.min(up, (total - step) / Math.max(1, Math.floor(total * WSD_DECAY)));
  if (s.name === 'linear') {
    const down = Math.max(0, (total - step) / Math.max(1, total - warm));
    return warm > 0 ? Math.min((step + 1) / warm, down) : Math.min(1, down);
  }
  if (step < warm) return up;
  const progress = Math.min(1, (step - warm) / Math.max(1, total - warm));
  return 0.5 * (1 + Math.cos(Math.PI * progress));
}
