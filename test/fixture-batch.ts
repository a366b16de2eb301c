// The hf-tiny fixture's batch, with no Node import: the Node parity tests (through test/shared.ts) and the browser
// test page (test/browser/page.ts) read it the same way.
import { Tensor } from '@dawngrad/tensor';
import type { SafetensorsFile } from '@dawngrad/model';

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
