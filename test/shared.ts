// Paths into ../shared (read-only inputs: data, models, HF fixtures), resolved from the repo root.
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

export const REPO = resolve(fileURLToPath(import.meta.url), '../..');
export const SHARED = resolve(REPO, '../shared');
export const HF_TINY = resolve(SHARED, 'fixtures/hf-tiny');
export const TINY_MODEL = resolve(SHARED, 'models/tweet-mistral-tiny');
export const LITE_OUTE = resolve(SHARED, 'models/lite-oute-1-300m-instruct');
export const TWEETS = resolve(SHARED, 'data/tweet_eval/sentiment');

/** Largest |a[i] - b[i]| (lengths must agree). */
export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbs: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** ‖a − b‖ / ‖b‖: the relative error the parity tests bound. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: lengths differ (${a.length} vs ${b.length})`);
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30);
}
