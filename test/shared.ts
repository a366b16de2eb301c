// Paths into ../shared (read-only inputs: data, models, HF fixtures), resolved from the repo root.
import { fileURLToPath } from 'node:url';
import { resolve, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { beforeAll, afterAll } from 'vitest';
import { init, dispose } from '@dawngrad/tensor';
import { SafetensorsFile } from '@dawngrad/model';

export const REPO = resolve(fileURLToPath(import.meta.url), '../..');
export const SHARED = resolve(REPO, '../shared');
export const HF_TINY = resolve(SHARED, 'fixtures/hf-tiny');
export const TINY_MODEL = resolve(SHARED, 'models/tweet-mistral-tiny');
export const LITE_OUTE = resolve(SHARED, 'models/lite-oute-1-300m-instruct');
export const TWEETS = resolve(SHARED, 'data/tweet_eval/sentiment');

export { maxAbs, relErr } from './errors.ts'; // browser-safe: the browser test page uses them too
export { fixtureBatch } from './fixture-batch.ts'; // browser-safe too

/**
 * The hf-tiny fixture's transformers/PEFT outputs for one test file: reference.json now, reference.safetensors opened
 * after init() (and `setup`, e.g. loading the model) before its tests, and closed with the device after them;
 * `tensor(name)` reads one of its tensors as a Float32Array.
 */
export function torchReference(setup?: () => Promise<void>) {
  const meta = JSON.parse(readFileSync(join(HF_TINY, 'reference.json'), 'utf8'));
  let dump: SafetensorsFile | undefined;
  beforeAll(async () => {
    await init();
    await setup?.();
    dump = await SafetensorsFile.open(join(HF_TINY, 'reference.safetensors'));
  });
  afterAll(async () => {
    await dump?.close();
    dispose();
  });
  const tensor = async (name: string) => (await dump!.readTensor(name)).data as Float32Array;
  return { meta, dump: () => dump!, tensor };
}
