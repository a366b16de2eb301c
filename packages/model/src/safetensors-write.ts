// safetensors, write side: a single file, or shards of bounded size plus model.safetensors.index.json (what
// save_pretrained writes). Every file is written atomically: a temp file in the same folder, fsync, rename, so a crash
// never leaves a half-written checkpoint under the real name. Tensor data may be given lazily (a function called when the
// tensor's turn comes), so a merge can stream a large model through the writer one tensor at a time.
import { nodeApi } from '@dawngrad/tensor';
import type { FileHandle } from 'node:fs/promises';
import { DTYPE_BYTES, f32ToBf16, f32ToF16, f16Overflow, numelOf } from './safetensors.ts';
import { INDEX_FILE, SINGLE_WEIGHTS_FILE } from './files.ts';

const { open, rename, rm } = nodeApi.fsp;
const { existsSync } = nodeApi.fs;
const { basename, dirname, join } = nodeApi.path;
const { randomBytes } = nodeApi.crypto;

export type WriteDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64';
export type TensorData = Float32Array | Float64Array | Int32Array | Uint16Array | BigInt64Array | readonly number[];

export interface TensorToWrite {
  dtype: WriteDType;
  shape: readonly number[];
  /**
   * The values in row-major order, or a function producing them when this tensor is written. Floats are converted to
   * `dtype` (round to nearest even for F16/BF16); a Uint16Array is taken as raw F16/BF16 bits; integers are range-checked.
   */
  data: TensorData | (() => TensorData | Promise<TensorData>);
}

/** Little-endian bytes of `data` stored as `dtype`. */
export function encodeTensor(name: string, t: TensorToWrite, data: TensorData): Uint8Array {
  const n = numelOf(t.shape);
  if (data.length !== n) throw new Error(`writeSafetensors: tensor "${name}" has ${data.length} values for shape [${t.shape.join(', ')}] (${n})`);
  const bytes = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const asF32 = () => (data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
  const ints = (lo: number, hi: number) => {
    for (let i = 0; i < n; i++) {
      const v = Number(data[i]);
      if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`writeSafetensors: tensor "${name}" value ${v} at index ${i} is not a ${t.dtype}`);
    }
  };
  switch (t.dtype) {
    case 'F32':
      return bytes(asF32());
    case 'F64':
      return bytes(data instanceof Float64Array ? data : Float64Array.from(data as ArrayLike<number>));
    case 'BF16':
      return bytes(data instanceof Uint16Array ? data : f32ToBf16(asF32()));
    case 'F16':
      if (data instanceof Uint16Array) return bytes(data);
      checkF16Range(name, asF32());
      return bytes(f32ToF16(asF32()));
    case 'I32':
      if (data instanceof Int32Array) return bytes(data);
      ints(-2147483648, 2147483647);
      return bytes(Int32Array.from(data as ArrayLike<number>));
    case 'I64': {
      if (data instanceof BigInt64Array) return bytes(data);
      ints(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(data[i] as number);
      return bytes(out);
    }
    default:
      throw new Error(`writeSafetensors: tensor "${name}": unsupported dtype ${JSON.stringify(t.dtype)}`);
  }
}

/** Refuse finite values that f16 would round to ±Inf (|x| ≥ 65520), naming the tensor: silently writing Inf loses them. */
function checkF16Range(name: string, a: Float32Array): void {
  const { count: n, worst } = f16Overflow(a);
  if (n > 0) {
    throw new Error(`writeSafetensors: tensor "${name}" holds ${n} value${n > 1 ? 's' : ''} outside f16's range (up to ${worst.toExponential(3)}; f16's largest is 65504): write it as bf16 or f32`);
  }
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, done, buf.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Write a file atomically: `fill` writes into a temp file beside `path`, which is fsynced and renamed over `path`. */
export async function writeFileAtomic(path: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  try {
    await fill(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
  // Make the rename itself durable (best effort: not every platform can fsync a directory).
  try {
    const d = await open(dirname(path), 'r');
    await d.sync().finally(() => d.close());
  } catch {
    /* ignore */
  }
}

/** The header JSON, padded with spaces so the data section starts 8-byte aligned (as the Rust writer does). */
function headerBytes(tensors: Record<string, TensorToWrite>, metadata: Record<string, string>): { header: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__' || name === '') throw new Error(`writeSafetensors: invalid tensor name ${JSON.stringify(name)}`);
    if (!(t.dtype in DTYPE_BYTES)) throw new Error(`writeSafetensors: tensor "${name}": unsupported dtype ${JSON.stringify(t.dtype)}`);
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`writeSafetensors: tensor "${name}": invalid shape [${t.shape.join(', ')}]`);
    }
    const n = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  const len = enc.encode(json).byteLength;
  json += ' '.repeat((8 - ((8 + len) % 8)) % 8);
  return { header: enc.encode(json), dataBytes: offset };
}

/**
 * Write tensors (in the given key order) to one .safetensors file, atomically. `metadata` goes to `__metadata__`;
 * `format: "pt"` is added unless given, because transformers refuses shards whose metadata lacks a known format.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Promise<void> {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata "${k}" must be a string`);
  }
  const { header } = headerBytes(tensors, { format: 'pt', ...metadata });
  await writeFileAtomic(path, async (fh) => {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    await writeAll(fh, len, 0);
    await writeAll(fh, header, 8);
    let pos = 8 + header.byteLength;
    for (const [name, t] of Object.entries(tensors)) {
      const data = typeof t.data === 'function' ? await t.data() : t.data;
      const b = encodeTensor(name, t, data);
      await writeAll(fh, b, pos);
      pos += b.byteLength;
    }
  });
}

export interface ShardedWriteResult {
  /** Shard files written (absolute paths), in order. */
  files: string[];
  /** The index path, or null when everything fit in one model.safetensors. */
  index: string | null;
}

/**
 * Write a checkpoint into `dir` as save_pretrained does: one model.safetensors when it fits in `maxShardBytes`,
 * otherwise `model-0000k-of-0000n.safetensors` shards (tensors kept whole, in order; a tensor larger than the limit gets
 * a shard of its own) and `model.safetensors.index.json` written last, so the index never names a missing shard.
 * A stale model.safetensors / index from an earlier save of the other kind is removed.
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: Record<string, TensorToWrite>,
  opts: { maxShardBytes: number; metadata?: Record<string, string> },
): Promise<ShardedWriteResult> {
  if (!(opts.maxShardBytes > 0)) throw new Error(`writeShardedSafetensors: maxShardBytes must be positive, got ${opts.maxShardBytes}`);
  const groups: string[][] = [];
  let size = 0;
  let total = 0;
  let params = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = numelOf(t.shape) * (DTYPE_BYTES[t.dtype] ?? 0);
    if (groups.length === 0 || (size > 0 && size + n > opts.maxShardBytes)) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(name);
    size += n;
    total += n;
    params += numelOf(t.shape);
  }
  if (groups.length <= 1) {
    const file = join(dir, SINGLE_WEIGHTS_FILE);
    await writeSafetensors(file, tensors, opts.metadata);
    if (existsSync(join(dir, INDEX_FILE))) await rm(join(dir, INDEX_FILE));
    return { files: [file], index: null };
  }
  const pad = (k: number) => String(k).padStart(5, '0');
  const names = groups.map((_, k) => `model-${pad(k + 1)}-of-${pad(groups.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  for (let k = 0; k < groups.length; k++) {
    const part: Record<string, TensorToWrite> = {};
    for (const name of groups[k]) {
      part[name] = tensors[name];
      weightMap[name] = names[k];
    }
    files.push(join(dir, names[k]));
    await writeSafetensors(files[k], part, opts.metadata);
  }
  const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  const index = join(dir, INDEX_FILE);
  const text = JSON.stringify({ metadata: { total_parameters: params, total_size: total }, weight_map: sorted }, null, 2) + '\n';
  await writeFileAtomic(index, (fh) => writeAll(fh, new TextEncoder().encode(text), 0));
  if (existsSync(join(dir, SINGLE_WEIGHTS_FILE))) await rm(join(dir, SINGLE_WEIGHTS_FILE));
  return { files, index };
}
