// A checkpoint = one model.safetensors, or model.safetensors.index.json whose weight_map names each tensor's shard.
// Both are opened as a TensorReader, so the model loader does not care which it got; the files come from a folder on
// disk, a URL or picked files (a FileSource). modelFingerprint identifies a model directory's weights without reading
// them all (a training checkpoint records it to refuse a resume on others).
import { nodeApi } from '@dawngrad/tensor';
import { SafetensorsFile, MAX_HEADER_BYTES, type LoadedTensor, type TensorInfo, type TensorReader } from './safetensors.ts';
import { CONFIG_FILE, INDEX_FILE, SINGLE_WEIGHTS_FILE, checkRelativeName } from './files.ts';
import { dirSource, readSourceJson, type FileSource } from './sources.ts';

const { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } = nodeApi.fs;
const { createHash } = nodeApi.crypto;
const { basename, dirname, join } = nodeApi.path;

/** The shards of a sharded checkpoint behind one TensorReader. */
export class ShardedCheckpoint implements TensorReader {
  private constructor(
    /** Path of model.safetensors.index.json. */
    readonly indexPath: string,
    /** The index's "metadata" (HF writes total_size), as strings. */
    readonly metadata: Record<string, string>,
    /** Tensor name -> its open shard. */
    private readonly owner: Map<string, SafetensorsFile>,
    readonly shards: SafetensorsFile[],
  ) {}

  /**
   * Open an index and all its shards, and check that they agree: every shard name stays inside the model directory and
   * exists, every weight_map entry is in its shard's header, and every tensor of every shard header is in the
   * weight_map under that shard (a tensor in two shards is refused).
   */
  static async open(indexPath: string): Promise<ShardedCheckpoint>;
  /** The index `file` of a FileSource (a folder, a URL, picked files) and the shards beside it. */
  static async open(src: FileSource, file: string): Promise<ShardedCheckpoint>;
  static async open(pathOrSource: string | FileSource, file = INDEX_FILE): Promise<ShardedCheckpoint> {
    const src = typeof pathOrSource === 'string' ? dirSource(dirname(pathOrSource)) : pathOrSource;
    if (typeof pathOrSource === 'string') file = basename(pathOrSource);
    const indexPath = src.where(file);
    const what = `safetensors index ${indexPath}`;
    const index = await readSourceJson(src, file, 'safetensors index');
    const wm = index.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new Error(`${what}: "weight_map" must be an object`);
    const weightMap = wm as Record<string, unknown>;
    const shardNames: string[] = [];
    for (const [tensor, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string') throw new Error(`${what}: weight_map["${tensor}"] must be a file name, got ${JSON.stringify(shard)}`);
      if (!shardNames.includes(shard)) shardNames.push(shard);
    }
    if (shardNames.length === 0) throw new Error(`${what}: weight_map is empty`);
    const metadata: Record<string, string> = {};
    if (typeof index.metadata === 'object' && index.metadata !== null) {
      for (const [k, v] of Object.entries(index.metadata)) {
        if (typeof v === 'string' || typeof v === 'number') metadata[k] = String(v);
      }
    }
    // Check every name before opening anything: a path escape should not cost a file open.
    for (const s of shardNames) checkRelativeName(s, src.name, what);
    for (const s of shardNames) await src.check(s, what);
    const shards: SafetensorsFile[] = [];
    try {
      for (const s of shardNames) shards.push(await SafetensorsFile.open(await src.open(s, 'safetensors')));
      const owner = new Map<string, SafetensorsFile>();
      const ownerName = new Map<string, string>();
      shards.forEach((shard, k) => {
        for (const name of shard.names()) {
          const seen = ownerName.get(name);
          if (seen !== undefined) throw new Error(`${what}: tensor "${name}" is in two shards, ${seen} and ${shardNames[k]}`);
          ownerName.set(name, shardNames[k]);
          owner.set(name, shard);
        }
      });
      for (const [tensor, shard] of Object.entries(weightMap)) {
        const actual = ownerName.get(tensor);
        if (actual === undefined) throw new Error(`${what}: weight_map puts "${tensor}" in ${shard}, but no shard holds it`);
        if (actual !== shard) throw new Error(`${what}: weight_map puts "${tensor}" in ${shard}, but it is in ${actual}`);
      }
      for (const [tensor, shard] of ownerName) {
        if (!(tensor in weightMap)) throw new Error(`${what}: shard ${shard} holds "${tensor}", which the weight_map does not list`);
      }
      return new ShardedCheckpoint(indexPath, metadata, owner, shards);
    } catch (e) {
      await Promise.all(shards.map((s) => s.close()));
      throw e;
    }
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private shardOf(name: string): SafetensorsFile {
    const s = this.owner.get(name);
    if (!s) throw new Error(`checkpoint ${this.indexPath}: no tensor named "${name}"`);
    return s;
  }

  info(name: string): TensorInfo {
    return this.shardOf(name).info(name);
  }

  infos(): TensorInfo[] {
    return this.shards.flatMap((s) => s.infos());
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.shardOf(name).readBytes(name);
  }

  readTensor(name: string): Promise<LoadedTensor> {
    return this.shardOf(name).readTensor(name);
  }

  /** Stream tensors one at a time: all of them shard by shard in data order (sequential disk reads), or the given names. */
  async *tensors(names?: readonly string[]): AsyncGenerator<LoadedTensor> {
    for (const n of names ?? this.names()) yield await this.readTensor(n);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

/**
 * Open the weights at `path`: a .safetensors file, a model.safetensors.index.json, or a model directory holding either
 * — or the model.safetensors / index of a FileSource (a URL, picked files). The caller closes the reader.
 */
export async function openCheckpoint(path: string | FileSource): Promise<TensorReader> {
  if (typeof path !== 'string') {
    const [hasSingle, hasIndex] = await Promise.all([path.has(SINGLE_WEIGHTS_FILE), path.has(INDEX_FILE)]);
    if (hasSingle && hasIndex) throw new Error(`model ${path.name}: both ${SINGLE_WEIGHTS_FILE} and ${INDEX_FILE} exist; remove the stale one`);
    if (!hasSingle && !hasIndex) throw new Error(`model ${path.name}: no ${SINGLE_WEIGHTS_FILE} and no ${INDEX_FILE}`);
    return hasSingle ? SafetensorsFile.open(await path.open(SINGLE_WEIGHTS_FILE)) : ShardedCheckpoint.open(path, INDEX_FILE);
  }
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new Error(`checkpoint ${path} does not exist`);
  }
  if (st.isDirectory()) {
    const single = join(path, SINGLE_WEIGHTS_FILE);
    const index = join(path, INDEX_FILE);
    const [hasSingle, hasIndex] = [existsSync(single), existsSync(index)];
    if (hasSingle && hasIndex) throw new Error(`model directory ${path}: both ${SINGLE_WEIGHTS_FILE} and ${INDEX_FILE} exist; remove the stale one`);
    if (!hasSingle && !hasIndex) throw new Error(`model directory ${path}: no ${SINGLE_WEIGHTS_FILE} and no ${INDEX_FILE}`);
    return hasSingle ? SafetensorsFile.open(single) : ShardedCheckpoint.open(index);
  }
  return path.endsWith('.index.json') ? ShardedCheckpoint.open(path) : SafetensorsFile.open(path);
}

// blocks of the data section hashed per weights file: any retrained or re-exported weights change some of them
const SAMPLED_BLOCKS = 16;
const BLOCK_BYTES = 4096;

/**
 * A cheap identity of the model in `dir`: config.json's hash, and for each weights file (model.safetensors, or the index
 * and its shards) its size and a SHA-256 over its safetensors header (every name, dtype, shape and offset) and 16
 * evenly spaced 4 KiB blocks of its data — about 64 KiB read per file. Two directories with equal fingerprints hold the
 * same model for any practical purpose; a changed value (file -> "size, hash") means different weights or config.
 */
export function modelFingerprint(dir: string): Record<string, string> {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);
  const out: Record<string, string> = {};
  out[CONFIG_FILE] = sha(readFileSync(join(dir, CONFIG_FILE)));
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f === INDEX_FILE).sort();
  for (const f of files) {
    const fd = openSync(join(dir, f), 'r');
    try {
      const size = fstatSync(fd).size;
      const h = createHash('sha256');
      const read = (pos: number, n: number) => {
        const b = new Uint8Array(Math.max(0, Math.min(n, size - pos)));
        readSync(fd, b, 0, b.length, pos);
        return b;
      };
      if (f === INDEX_FILE) h.update(read(0, size));
      else {
        const head = read(0, 8);
        const n = head.length === 8 ? Number(new DataView(head.buffer).getBigUint64(0, true)) : 0;
        const start = Math.min(size, 8 + Math.min(n, MAX_HEADER_BYTES)); // a garbage length must not read the whole file
        h.update(head).update(read(8, start - 8)); // the header (a damaged one is the loader's to refuse)
        for (let k = 0; k < SAMPLED_BLOCKS; k++) h.update(read(start + Math.floor(((size - start) * k) / SAMPLED_BLOCKS), BLOCK_BYTES));
      }
      out[f] = `${size} bytes, ${h.digest('hex').slice(0, 16)}`;
    } finally {
      closeSync(fd);
    }
  }
  return out;
}
