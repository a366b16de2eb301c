// A merged model as a complete Hugging Face model directory: config.json, the weights (one model.safetensors or
// shards + model.safetensors.index.json, through the sharded writer), generation_config.json and the tokenizer files
// copied from the base. The directory appears whole or not at all (filled as a temp sibling, then renamed).
import { nodeApi } from '@dawngrad/tensor';
import {
  loadModel,
  openCheckpoint,
  modelFiles,
  resolveInside,
  writeShardedSafetensors,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  type MistralForCausalLM,
  type TensorToWrite,
  type ShardedWriteResult,
  type WriteDType,
} from '@dawngrad/model';
import { loadAdapter, writeDirAtomic, writeTextAtomic } from './adapter-files.ts';

const { copyFile } = nodeApi.fsp;
const { existsSync, readdirSync, readFileSync, statSync } = nodeApi.fs;
const { basename, join } = nodeApi.path;

/** Files besides the weights that make a model directory usable: copied as they are when the base has them. */
export const COPIED_FILES = [
  GENERATION_CONFIG_FILE,
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
];

export type OutputDType = 'auto' | 'F32' | 'BF16' | 'F16';

export interface ExportOptions {
  /** 'auto' (default): each tensor in the dtype the base checkpoint stored it in; else everything in this dtype */
  dtype?: OutputDType;
  /** shard size limit in bytes (default 5 GB, transformers' classic default) */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Record<string, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** Refuse an output directory that already holds something: a merge never overwrites. */
export function checkOutDir(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new Error(`output ${out} exists and is not a directory`);
  if (readdirSync(out).length > 0) throw new Error(`output directory ${out} is not empty; refusing to overwrite it`);
}

/**
 * Write `model`'s current weights (e.g. after LoraModel.merge()) as an HF model directory `out`, taking config.json,
 * tokenizer and generation config from the base directory `baseDir`. `out` must not exist or be empty.
 */
export async function writeModelDirectory(model: MistralForCausalLM, baseDir: string, out: string, opts: ExportOptions = {}): Promise<ShardedWriteResult> {
  checkOutDir(out);
  const files = modelFiles(baseDir);
  const srcDtypes = new Map<string, string>();
  if (files.weights) {
    const ckpt = await openCheckpoint(baseDir);
    for (const i of ckpt.infos()) srcDtypes.set(i.name, i.dtype);
    await ckpt.close();
  }
  const want = opts.dtype ?? 'auto';
  const tensors: Record<string, TensorToWrite> = {};
  for (const { name, param } of model.namedParameters()) {
    const src = srcDtypes.get(name);
    const dtype = (want !== 'auto' ? want : src === 'BF16' || src === 'F16' ? src : 'F32') as WriteDType;
    tensors[name] = { dtype, shape: param.shape, data: async () => (await param.data.toArray()) as Float32Array };
  }
  // config.json says which dtype the weights are in: keep it true when we changed it
  const written = new Set(Object.values(tensors).map((t) => t.dtype));
  const raw = JSON.parse(readFileSync(files.config, 'utf8')) as Record<string, unknown>;
  let configText: string | null = null;
  if (written.size === 1) {
    const name = TORCH_DTYPE[[...written][0]!]!;
    for (const key of ['dtype', 'torch_dtype']) {
      if (key in raw && raw[key] !== name) {
        raw[key] = name;
        configText = JSON.stringify(raw, null, 2) + '\n';
      }
    }
  }
  let result: ShardedWriteResult | null = null;
  await writeDirAtomic(out, async (into) => {
    result = await writeShardedSafetensors(into, tensors, { maxShardBytes: opts.maxShardBytes ?? 5e9 });
    if (configText !== null) await writeTextAtomic(join(into, CONFIG_FILE), configText);
    else await copyFile(files.config, join(into, CONFIG_FILE));
    for (const f of COPIED_FILES) {
      if (existsSync(join(files.dir, f))) await copyFile(resolveInside(files.dir, f, `model directory ${baseDir}`), join(into, f));
    }
  });
  // the writer reported paths inside the temp directory; report them where they ended up
  const r = result! as ShardedWriteResult;
  const moved = (p: string) => join(out, basename(p));
  return { files: r.files.map(moved), index: r.index && moved(r.index) };
}

/** Merge a PEFT adapter into a base model and write the merged model directory (what `dawngrad merge` does). */
export async function mergeToDirectory(baseDir: string, adapterDir: string, out: string, opts: ExportOptions = {}): Promise<ShardedWriteResult & { merged: string[] }> {
  checkOutDir(out); // before loading anything
  const model = await loadModel(baseDir);
  try {
    const lora = await loadAdapter(adapterDir, model);
    lora.merge();
    const merged = lora.layers.map((l) => l.path);
    lora.unload(); // frees A and B; the merged weights stay in the base model
    return { ...(await writeModelDirectory(model, baseDir, out, opts)), merged };
  } finally {
    model.dispose();
  }
}
