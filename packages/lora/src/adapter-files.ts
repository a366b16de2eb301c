// PEFT adapter directories: adapter_config.json + adapter_model.safetensors.
//
// Saved keys drop the adapter name (base_model.model.<path>.lora_A.weight), as PEFT's save_pretrained does; tensors are
// written F32. Loading accepts any plain-LoRA PEFT adapter for Llama/Mistral (tensors F32/BF16/F16/F64) and checks it
// against the model before touching the GPU: every key expected and nothing else, every shape agreeing with r and
// with its layer, every value finite, no file reached through a symlink that leaves the directory.
import { nodeApi } from '@dawngrad/tensor';
import {
  SafetensorsFile,
  writeSafetensors,
  writeFileAtomic,
  readSourceJson,
  toSource,
  checkFiniteWeights,
  type FileSource,
  type MistralForCausalLM,
  type SafeDType,
} from '@dawngrad/model';
import { selectTargets, type LoraConfig } from './config.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_PICKLE_FILE, ADAPTER_WEIGHTS_FILE, parsePeftConfig, peftJsonText, toPeftJson } from './peft-config.ts';
import { inject, peftSavedKey, type LoraFactors, type LoraModel } from './lora.ts';

const { existsSync, readdirSync, statSync } = nodeApi.fs;
const { mkdir, rename, rm, rmdir } = nodeApi.fsp;
const { basename, dirname, join, resolve } = nodeApi.path;
const { randomBytes } = nodeApi.crypto;

const LOADABLE_DTYPES: readonly SafeDType[] = ['F32', 'BF16', 'F16', 'F64'];

/** A directory that does not exist or holds nothing. */
function isAbsentOrEmpty(dir: string): boolean {
  if (!existsSync(dir)) return true;
  if (!statSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  return readdirSync(dir).length === 0;
}

/**
 * Write files into `dir` so that no reader ever sees a half-written set: a fresh (or empty) directory is filled as a
 * temp sibling and renamed into place; into an existing directory each file goes atomically (temp file + rename).
 */
export async function writeDirAtomic(dir: string, fill: (into: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  if (!isAbsentOrEmpty(target)) {
    await fill(target); // each file writer below is atomic on its own
    return;
  }
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await mkdir(tmp);
  try {
    await fill(tmp);
    if (existsSync(target)) await rmdir(target); // empty, checked above; rmdir refuses if something appeared since
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Write a text file atomically. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  await writeFileAtomic(path, async (fh) => {
    let done = 0;
    while (done < bytes.byteLength) done += (await fh.write(bytes, done, bytes.byteLength - done, done)).bytesWritten;
  });
}

/** The adapter_config.json object this LoraModel saves. */
export function adapterConfigJson(lora: LoraModel): Record<string, unknown> {
  return toPeftJson(lora.config, lora.targetModules);
}

/** Save as PEFT does: adapter_config.json and adapter_model.safetensors (F32, keys without `.default`). */
export async function saveAdapter(lora: LoraModel, dir: string): Promise<void> {
  if (lora.layers.length === 0) throw new Error('saveAdapter: this LoraModel has no adapters (unloaded?)');
  const tensors: Parameters<typeof writeSafetensors>[1] = {};
  for (const l of lora.layers) {
    tensors[peftSavedKey(l.path, 'A')] = { dtype: 'F32', shape: l.A.shape, data: async () => (await l.A.data.toArray()) as Float32Array };
    tensors[peftSavedKey(l.path, 'B')] = { dtype: 'F32', shape: l.B.shape, data: async () => (await l.B.data.toArray()) as Float32Array };
  }
  const config = peftJsonText(adapterConfigJson(lora));
  await writeDirAtomic(dir, async (into) => {
    await writeSafetensors(join(into, ADAPTER_WEIGHTS_FILE), tensors);
    await writeTextAtomic(join(into, ADAPTER_CONFIG_FILE), config);
  });
}

/** An adapter read from disk and checked against a model, ready to inject. */
export interface AdapterOnDisk {
  config: LoraConfig;
  /** module path -> host factors (converted to f32) */
  factors: Map<string, LoraFactors>;
  /** the stored dtype of each tensor, by saved key */
  dtypes: Map<string, SafeDType>;
}

/** Read and validate an adapter (a directory, or a URL / picked-files FileSource) against `model` (no GPU work). */
export async function readAdapter(from: string | FileSource, model: MistralForCausalLM): Promise<AdapterOnDisk> {
  if (typeof from === 'string' && (!existsSync(from) || !statSync(from).isDirectory())) throw new Error(`adapter directory ${from} does not exist`);
  const src = toSource(from);
  const dir = src.name;
  await src.check(ADAPTER_CONFIG_FILE, `adapter ${dir}`);
  const cfgPath = src.where(ADAPTER_CONFIG_FILE);
  const config = parsePeftConfig(await readSourceJson(src, ADAPTER_CONFIG_FILE, 'adapter config'), cfgPath);
  if (!(await src.has(ADAPTER_WEIGHTS_FILE)) && (await src.has(ADAPTER_PICKLE_FILE))) {
    throw new Error(`adapter ${dir}: only ${ADAPTER_PICKLE_FILE} (a pickle) is present; save it as ${ADAPTER_WEIGHTS_FILE}`);
  }
  await src.check(ADAPTER_WEIGHTS_FILE, `adapter ${dir}`);
  const wPath = src.where(ADAPTER_WEIGHTS_FILE);
  const linears = model.linears();
  const { targets } = selectTargets(config, linears.map((l) => l.path), cfgPath);
  const file = await SafetensorsFile.open(await src.open(ADAPTER_WEIGHTS_FILE));
  try {
    const expected = new Set(targets.flatMap((p) => [peftSavedKey(p, 'A'), peftSavedKey(p, 'B')]));
    const present = file.names();
    const missing = [...expected].filter((k) => !file.has(k));
    const extra = present.filter((k) => !expected.has(k));
    if (missing.length > 0) throw new Error(`adapter ${wPath}: missing ${missing.length} tensor(s) the config targets, e.g. ${missing[0]}`);
    if (extra.length > 0) {
      const hint = extra[0]!.includes(`.default.`) ? ' (keys must not contain the adapter name, as PEFT saves them)' : '';
      throw new Error(`adapter ${wPath}: ${extra.length} tensor(s) the config does not target, e.g. ${extra[0]}${hint}`);
    }
    const { r } = config;
    const factors = new Map<string, LoraFactors>();
    const dtypes = new Map<string, SafeDType>();
    for (const l of linears) {
      if (!targets.includes(l.path)) continue;
      const want = { A: [r, l.inFeatures], B: [l.outFeatures, r] };
      const got: Partial<LoraFactors> = {};
      for (const f of ['A', 'B'] as const) {
        const key = peftSavedKey(l.path, f);
        const info = file.info(key);
        if (!LOADABLE_DTYPES.includes(info.dtype)) {
          throw new Error(`adapter ${wPath}: ${key} is ${info.dtype}; LoRA weights must be one of ${LOADABLE_DTYPES.join(', ')}`);
        }
        if (info.shape.length !== 2 || info.shape[0] !== want[f][0] || info.shape[1] !== want[f][1]) {
          throw new Error(
            `adapter ${wPath}: ${key} has shape [${info.shape.join(', ')}], expected [${want[f].join(', ')}] ` +
              `(r = ${r}; ${l.path} is [${l.outFeatures}, ${l.inFeatures}])`,
          );
        }
        const data = (await file.readTensor(key)).data as Float32Array;
        checkFiniteWeights(data, key, `adapter ${wPath}`); // a NaN here merges and evaluates without a word otherwise
        got[f === 'A' ? 'a' : 'b'] = data;
        dtypes.set(key, info.dtype);
      }
      factors.set(l.path, got as LoraFactors);
    }
    return { config, factors, dtypes };
  } finally {
    await file.close();
  }
}

/** Load a PEFT LoRA adapter (a directory, or a URL / picked-files FileSource) onto `model`: inject with the saved config and factors. */
export async function loadAdapter(dir: string | FileSource, model: MistralForCausalLM): Promise<LoraModel> {
  const { config, factors } = await readAdapter(dir, model);
  return inject(model, config, factors);
}
