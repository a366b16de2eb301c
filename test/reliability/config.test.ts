// A config.json, tokenizer or chat template the model code cannot honour is refused at the boundary, through the CLI:
// one line naming the file and the field, exit 1, nothing written (a refused train leaves no run directory).
import { describe, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyModel, cropRows, editJson, expectRefused, readRaw, writeRaw, refusalScratch, type Command } from './helpers.ts';

const scratch = refusalScratch();

const config = (edit: (j: Record<string, unknown>) => void) => (dir: string) => editJson(join(dir, 'config.json'), edit);
const tokenizerModel = (edit: (m: Record<string, unknown>) => void) => (dir: string) =>
  editJson(join(dir, 'tokenizer.json'), (j) => edit(j.model as Record<string, unknown>));

const cases: [string, Command, (dir: string) => void, RegExp][] = [
  ['a missing required field', 'train', config((j) => delete j.hidden_size), /^dawngrad: \S+\/config\.json: missing required field "hidden_size"$/],
  ['a field of the wrong type', 'forward', config((j) => (j.num_hidden_layers = '2')), /\S+\/config\.json: "num_hidden_layers" must be a positive integer, got "2"$/],
  ['an unsupported architecture', 'merge', config((j) => (j.architectures = ['GPT2LMHeadModel'])),
    /\S+\/config\.json: architecture \["GPT2LMHeadModel"\] is not supported \(supported: MistralForCausalLM, LlamaForCausalLM\)$/],
  ['rope scaling', 'train', config((j) => (j.rope_scaling = { rope_type: 'linear', factor: 2 })), /\S+\/config\.json: rope_scaling "linear" is not supported/],
  ['a non-default rope type', 'eval', config((j) => (j.rope_parameters = { rope_theta: 10000, rope_type: 'yarn', factor: 4 })),
    /\S+\/config\.json: rope_parameters\.rope_type "yarn" is not supported/],
  ['biased projections', 'forward', config((j) => (j.attention_bias = true)), /\S+\/config\.json: "attention_bias": true is not supported/],
  ['weight shapes that disagree with the config', 'eval', config((j) => (j.intermediate_size = 200)),
    /model \S+ does not match its config: 6 mismatched \(model\.layers\.0\.mlp\.down_proj\.weight: checkpoint \[112, 224\] vs config \[112, 200\];/],
  ['a layer the checkpoint does not have', 'forward', config((j) => (j.num_hidden_layers = 3)),
    /\S+ does not match its config: 9 missing \(model\.layers\.2\./],
  ['a tokenizer vocabulary larger than the embedding', 'train', (d) => {
    // a consistent 999-row model (config and both [V, C] matrices), but the tokenizer still has 1000 ids
    editJson(join(d, 'config.json'), (j) => (j.vocab_size = 999));
    writeRaw(join(d, 'model.safetensors'), cropRows(cropRows(readRaw(join(d, 'model.safetensors')), 'lm_head.weight', 999), 'model.embed_tokens.weight', 999));
  }, /model \S+: tokenizer has 1000 token ids but the model's embedding has only 999 rows \(vocab_size\)$/],
  ['a config that is not JSON', 'eval', (d) => writeFileSync(join(d, 'config.json'), '{"hidden_size": 112,'), /config \S+\/config\.json: not valid JSON \(.+\)$/],
  ['no config at all', 'merge', (d) => rmSync(join(d, 'config.json')), /config \S+\/config\.json: cannot read \(ENOENT\)$/],
  ['a tokenizer_config.json whose eos_token is not in the vocabulary', 'train', (d) => editJson(join(d, 'tokenizer_config.json'), (j) => (j.eos_token = '<|nope|>')),
    /eos_token "<\|nope\|>" is not in the vocabulary$/],
  // every text would become <unk>: training would run on nothing and first-token scoring would be dropped
  ['a tokenizer with an empty vocabulary', 'train', tokenizerModel((m) => ((m.vocab = {}), (m.merges = []))),
    /^dawngrad: \S+\/tokenizer\.json: model\.vocab is empty \(every text would become <unk>\); the tokenizer file is damaged$/],
  ['a tokenizer model type the library does not know', 'eval', tokenizerModel((m) => (m.type = 'BPE2')),
    /^dawngrad: \S+\/tokenizer\.json: model\.type "BPE2" is not supported \(supported: BPE, WordPiece, Unigram\)$/],
  // the prompts are rendered before the run directory exists, so a template that raises leaves nothing behind
  ['a chat template that raises', 'train', (d) => editJson(join(d, 'tokenizer_config.json'), (j) => (j.chat_template = "{{ raise_exception('System role not supported') }}")),
    /^dawngrad: \S+: chat_template: rendering failed \(System role not supported\)$/],
];

describe.concurrent('configs the model cannot honour are refused with one line, exit 1, nothing written', () => {
  it.each(cases)('%s (%s)', async (name, cmd, breakIt, msg) => {
    const model = copyModel(join(scratch.tmp, name.replace(/\W+/g, '-')));
    breakIt(model);
    await expectRefused(cmd, { model, data: scratch.data }, msg);
  });
});
