// Broken weights through the CLI: every malformed safetensors file or sharded index is refused with one line naming
// the file and the problem, exit 1, and nothing written (no run directory, merged model or forward output). Each case
// is a copy of hf-tiny with one thing broken, run through train, eval, merge or forward (all load the model alike).
import { describe, it } from 'vitest';
import { mkdirSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  copyModel, editJson, entries, expectRefused, rawBytes, readRaw, shardModel, writeRaw, refusalScratch, type Command,
} from './helpers.ts';

const WEIGHTS = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const SHARD2 = 'model-00002-of-00002.safetensors';

const scratch = refusalScratch();

/** Edit the tensor entries of the single weights file (offsets stay relative to the untouched data section). */
const editHeader = (edit: (e: ReturnType<typeof entries>) => void) => (dir: string) => {
  const raw = readRaw(join(dir, WEIGHTS));
  edit(entries(raw).sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]));
  writeRaw(join(dir, WEIGHTS), raw);
};

const cases: [string, Command, (dir: string) => void, RegExp][] = [
  ['a truncated file', 'eval', (d) => truncateSync(join(d, WEIGHTS), Math.floor(statSync(join(d, WEIGHTS)).size / 2)),
    /^dawngrad: safetensors \S+\/model\.safetensors: tensor "[\w.]+": data_offsets \[\d+, \d+\] lie outside the data section of \d+ bytes$/],
  ['a file shorter than its own length field', 'train', (d) => writeFileSync(join(d, WEIGHTS), Buffer.alloc(5)),
    /safetensors \S+\/model\.safetensors: file is 5 bytes, shorter than the 8-byte header length$/],
  ['a header length larger than the file', 'merge', (d) => {
    const b = Buffer.alloc(18);
    b.writeBigUInt64LE(1_000_000n);
    writeFileSync(join(d, WEIGHTS), b);
  }, /safetensors \S+\/model\.safetensors: header length 1000000 is larger than the file \(18 bytes\)$/],
  ['a header that is not JSON', 'forward', (d) => writeFileSync(join(d, WEIGHTS), rawBytes(null, readRaw(join(d, WEIGHTS)).data, '{"lm_head.weight": {')),
    /safetensors \S+\/model\.safetensors: header is not valid JSON \(.+\)$/],
  ['offsets past the end of the file', 'train', editHeader((e) => {
    e.at(-1)![1].data_offsets[1] += 8;
  }), /safetensors \S+\/model\.safetensors: tensor "[\w.]+": data_offsets \[\d+, \d+\] lie outside the data section of 1801408 bytes$/],
  ['two tensors over the same bytes', 'merge', editHeader((e) => {
    e[1]![1].data_offsets = [...e[0]![1].data_offsets]; // lm_head and embed_tokens have the same shape
  }), /safetensors \S+\/model\.safetensors: tensors "lm_head\.weight" \[0, 448000\] and "model\.embed_tokens\.weight" \[0, 448000\] overlap$/],
  ['offsets that disagree with shape × dtype', 'eval', editHeader((e) => {
    e.find(([k]) => k === 'model.norm.weight')![1].shape = [111];
  }), /tensor "model\.norm\.weight": data_offsets span 448 bytes but shape \[111\] F32 needs 444$/],
  ['an unknown dtype', 'train', editHeader((e) => {
    e[0]![1].dtype = 'F17';
  }), /safetensors \S+\/model\.safetensors: tensor "lm_head\.weight": unknown dtype "F17"$/],
  ['a shard the index names is missing', 'eval', (d) => {
    shardModel(d);
    rmSync(join(d, SHARD2));
  }, /safetensors index \S+\/model\.safetensors\.index\.json: file "model-00002-of-00002\.safetensors" does not exist in \S+$/],
  ['a tensor in two shards', 'merge', (d) => shardModel(d, ({ shards }) => {
    shards[1]![1].push(shards[0]![1][0]!);
  }), /safetensors index \S+: tensor "lm_head\.weight" is in two shards, model-00001-of-00002\.safetensors and model-00002-of-00002\.safetensors$/],
  ['an index entry no shard holds', 'forward', (d) => {
    shardModel(d);
    editJson(join(d, INDEX), (j) => {
      (j.weight_map as Record<string, string>)['model.layers.9.mlp.up_proj.weight'] = SHARD2;
    });
  }, /safetensors index \S+: weight_map puts "model\.layers\.9\.mlp\.up_proj\.weight" in model-00002-of-00002\.safetensors, but no shard holds it$/],
  ['an index path leaving the directory with ../', 'train', (d) => {
    shardModel(d, ({ weightMap }) => {
      for (const k in weightMap) if (weightMap[k] === SHARD2) weightMap[k] = `../${SHARD2}`;
    });
    renameSync(join(d, SHARD2), join(d, '..', SHARD2)); // the escape would even find its file
  }, /safetensors index \S+: file name "\.\.\/model-00002-of-00002\.safetensors" must be a plain relative path inside \S+$/],
  ['an absolute index path', 'forward', (d) => {
    shardModel(d, ({ weightMap }) => {
      for (const k in weightMap) if (weightMap[k] === SHARD2) weightMap[k] = join(d, SHARD2);
    });
  }, /safetensors index \S+: file name "\/\S+\/model-00002-of-00002\.safetensors" must be a plain relative path inside \S+$/],
  ['a shard symlinked out of the directory', 'merge', (d) => {
    shardModel(d);
    const outside = join(d, '..', `outside-${SHARD2}`);
    renameSync(join(d, SHARD2), outside);
    symlinkSync(outside, join(d, SHARD2));
  }, /safetensors index \S+: file "model-00002-of-00002\.safetensors" is a symlink to \S+outside-model-00002-of-00002\.safetensors, outside \S+$/],
];

describe.concurrent('malformed weights are refused with one line, exit 1, nothing written', () => {
  it.each(cases)('%s (%s)', async (name, cmd, breakIt, msg) => {
    // its own parent: the ../ cases put files beside the model directory
    const parent = join(scratch.tmp, name.replace(/\W+/g, '-'));
    mkdirSync(parent);
    const model = copyModel(join(parent, 'model'));
    breakIt(model);
    await expectRefused(cmd, { model, data: scratch.data }, msg);
  });
});
