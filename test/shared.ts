// Paths into ../shared (read-only inputs: data, models, HF fixtures), resolved from the repo root.
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Tensor } from '@dawngrad/tensor';
import type { SafetensorsFile } from '@dawngrad/model';

export const REPO = resolve(fileURLToPath(import.meta.url), '../..');
export const SHARED = resolve(REPO, '../shared');
export const HF_TINY = resolve(SHARED, 'fixtures/hf-tiny');
export const TINY_MODEL = resolve(SHARED, 'models/tweet-mistral-tiny');
export const LITE_OUTE = resolve(SHARED, 'models/lite-oute-1-300m-instruct');
export const TWEETS = resolve(SHARED, 'data/tweet_eval/sentiment');

export { maxAbs, relErr } from './errors.ts'; // browser-safe: the browser test page uses them too

/** The hf-tiny fixture's batch from its reference dump, on the GPU (ids and mask [B, T]), with its labels. */
export async function fixtureBatch(dump: SafetensorsFile) {
  const ids = await dump.readTensor('input_ids');
  const [B, T] = ids.shape as [number, number];
  const labels = (await dump.readTensor('labels')).data as Int32Array;
  const batch = {
    inputIds: Tensor.fromArray(ids.data as Int32Array, [B, T], 'i32'),
    attentionMask: Tensor.fromArray((await dump.readTensor('attention_mask')).data as Int32Array, [B, T], 'i32'),
  };
  return { batch, labels, B, T };
}
