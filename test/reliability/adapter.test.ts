// Adapters we cannot apply exactly as PEFT would are refused before they touch the model, through `eval`, `merge`
// and `forward --adapter`: one line naming the file and the field, exit 1, nothing written (merge leaves no --out).
import { describe, it } from 'vitest';
import { renameSync, rmSync, truncateSync, statSync, symlinkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { copyAdapter, editJson, expectRefused, refusalScratch, type Command } from './helpers.ts';

const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

const scratch = refusalScratch();

const config = (edit: (j: Record<string, unknown>) => void) => (dir: string) => editJson(join(dir, CONFIG), edit);

// the fixture adapter: PEFT LoRA r 4 on k_proj and v_proj of hf-tiny
const cases: [string, Command, (dir: string) => void, RegExp][] = [
  ['another PEFT method', 'eval', config((j) => (j.peft_type = 'PREFIX_TUNING')),
    /^dawngrad: \S+\/adapter_config\.json: peft_type "PREFIX_TUNING" is not supported \(only "LORA"\)$/],
  ['DoRA', 'merge', config((j) => (j.use_dora = true)), /\S+\/adapter_config\.json: use_dora = true: DoRA \(weight-decomposed LoRA\) is not supported$/],
  ['trained biases (bias ≠ none)', 'forward', config((j) => (j.bias = 'lora_only')), /\S+\/adapter_config\.json: bias "lora_only" is not supported \(only "none"\)$/],
  ['targets the model does not have', 'merge', config((j) => (j.target_modules = ['k_proj', 'c_attn'])),
    /\S+\/adapter_config\.json: target_modules "c_attn" match no linear layer of the model \(linear layers look like model\.layers\.0\.self_attn\.q_proj\)$/],
  ['A/B shapes that disagree with r', 'forward', config((j) => (j.r = 8)),
    /adapter \S+\/adapter_model\.safetensors: base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight has shape \[4, 112\], expected \[8, 112\] \(r = 8; /],
  ['fewer targets in the config than tensors in the file', 'merge', config((j) => (j.target_modules = ['k_proj'])),
    /adapter \S+: 4 tensor\(s\) the config does not target, e\.g\. base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_A\.weight$/],
  ['a truncated weights file', 'eval', (d) => truncateSync(join(d, WEIGHTS), statSync(join(d, WEIGHTS)).size - 100),
    /safetensors \S+\/adapter_model\.safetensors: tensor "[\w.]+": data_offsets \[\d+, \d+\] lie outside the data section/],
  ['only the pickle format', 'merge', (d) => renameSync(join(d, WEIGHTS), join(d, 'adapter_model.bin')),
    /adapter \S+: only adapter_model\.bin \(a pickle\) is present; save it as adapter_model\.safetensors$/],
  ['weights symlinked out of the directory', 'forward', (d) => {
    const outside = join(d, '..', `outside-${WEIGHTS}`);
    renameSync(join(d, WEIGHTS), outside);
    symlinkSync(outside, join(d, WEIGHTS));
  }, /adapter \S+: file "adapter_model\.safetensors" is a symlink to \S+outside-adapter_model\.safetensors, outside \S+$/],
  ['a directory with no adapter in it', 'merge', (d) => {
    rmSync(join(d, CONFIG));
    rmSync(join(d, WEIGHTS));
  }, /adapter \S+: file "adapter_config\.json" does not exist in \S+$/],
];

describe.concurrent('adapters that cannot be applied exactly are refused with one line, exit 1, nothing written', () => {
  it.each(cases)('%s (%s)', async (name, cmd, breakIt, msg) => {
    const parent = join(scratch.tmp, name.replace(/\W+/g, '-'));
    mkdirSync(parent);
    const adapter = copyAdapter(join(parent, 'adapter'));
    breakIt(adapter);
    await expectRefused(cmd, { adapter, data: scratch.data }, msg);
  });
});
