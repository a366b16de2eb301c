// Paths into ../shared (read-only inputs: data, models, HF fixtures), resolved from the repo root.
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

export const REPO = resolve(fileURLToPath(import.meta.url), '../..');
export const SHARED = resolve(REPO, '../shared');
export const HF_TINY = resolve(SHARED, 'fixtures/hf-tiny');
export const TINY_MODEL = resolve(SHARED, 'models/tweet-mistral-tiny');
export const LITE_OUTE = resolve(SHARED, 'models/lite-oute-1-300m-instruct');
export const TWEETS = resolve(SHARED, 'data/tweet_eval/sentiment');

export { maxAbs, relErr } from './errors.ts'; // browser-safe: the browser test page uses them too
