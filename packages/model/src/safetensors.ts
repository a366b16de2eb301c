// safetensors, read side: one file = [u64 little-endian header length n][n bytes of JSON header][data section].
// The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative to the data
// section) plus an optional "__metadata__" string map. We validate the whole header when the file is opened and then
// read one tensor at a time with positioned reads, so a 1.2 GB checkpoint never needs more than one tensor in JS memory.
// The bytes come from a ByteSource: a file on disk in Node, a URL (range requests) or a File/Blob in a browser.
import { pathByteSource, type ByteSource } from './sources.ts';

/** Every dtype the safetensors format defines, with its size in bytes. */
export const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;
export type SafeDType = keyof typeof DTYPE_BYTES;

/** The dtypes we convert on read: floats become Float32Array, integers become Int32Array (range-checked). */
export const FLOAT_DTYPES: readonly SafeDType[] = ['F32', 'F16', 'BF16', 'F64'];
export const INT_DTYPES: readonly SafeDType[] = ['I32', 'I64'];

export interface TensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  /** The file holding the tensor. */
  file: string;
  /** Absolute byte range [byteOffset, byteOffset + byteLength) in that file. */
  byteOffset: number;
  byteLength: number;
}

/** A tensor read from disk, converted: floats as Float32Array, integers as Int32Array. `dtype` is the stored one. */
export interface LoadedTensor {
  name: string;
  dtype: SafeDType;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** What both a single file and a sharded checkpoint offer (see checkpoint.ts for the sharded one). */
export interface TensorReader {
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  infos(): TensorInfo[];
  readBytes(name: string): Promise<Uint8Array>;
  readTensor(name: string): Promise<LoadedTensor>;
  tensors(names?: readonly string[]): AsyncGenerator<LoadedTensor>;
  close(): Promise<void>;
}

/** The Rust reference implementation caps headers at 100 MB; so do we (a bigger "length" is garbage, not a header). */
export const MAX_HEADER_BYTES = 100_000_000;

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---- half-precision conversions (little-endian bit patterns) ----

/** bf16 is the top half of an f32: widening is a 16-bit shift, exact. */
export function bf16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

let F16_TABLE: Float32Array | null = null;
/** All 65536 f16 values as f32 (a 256 KB table built once; every f16 is exactly representable in f32). */
function f16Table(): Float32Array {
  if (F16_TABLE) return F16_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) t[h] = sign * man * 2 ** -24; // zero and subnormals
    else if (exp === 31) t[h] = man ? NaN : sign * Infinity;
    else t[h] = sign * (1 + man / 1024) * 2 ** (exp - 15);
  }
  return (F16_TABLE = t);
}

export function f16ToF32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const t = f16Table();
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/** f32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16(x: Float32Array, out = new Uint16Array(x.length)): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Finite values that f16 would round to ±Infinity (|x| ≥ 65520: 65504, f16's largest, is the nearest below). */
export function f16Overflow(a: Float32Array): { count: number; worst: number } {
  let count = 0;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i]!);
    if (x >= 65520 && x !== Infinity) {
      count++;
      worst = Math.max(worst, x);
    }
  }
  return { count, worst };
}

/** f32 -> f16 bits, round to nearest even, with subnormals; too large -> ±Infinity. */
export function f32ToF16(x: Float32Array, out = new Uint16Array(x.length)): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const man = b & 0x7fffff;
    if (exp === 0xff) { out[i] = sign | 0x7c00 | (man ? 0x200 : 0); continue; }
    const e = exp - 127 + 15;
    if (e >= 31) { out[i] = sign | 0x7c00; continue; }
    if (e <= 0) {
      if (e < -10) { out[i] = sign; continue; }
      const full = man | 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rem = full & ((1 << shift) - 1);
      let m = full >>> shift;
      if (rem > half || (rem === half && m & 1)) m++;
      out[i] = sign | m; // m may reach 0x400: the smallest normal, correctly
      continue;
    }
    let h = sign | (e << 10) | (man >>> 13);
    const rem = man & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is the right rounding (up to Inf)
    out[i] = h;
  }
  return out;
}

/** Convert raw little-endian bytes of a stored dtype to Float32Array / Int32Array. `raw` must start 8-byte aligned. */
export function convertBytes(raw: Uint8Array, dtype: SafeDType, where: string): Float32Array | Int32Array {
  const n = raw.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'F32':
      return new Float32Array(raw.buffer, raw.byteOffset, n);
    case 'BF16':
      return bf16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, n));
    case 'F16':
      return f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, n));
    case 'F64':
      return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, n));
    case 'I32':
      return new Int32Array(raw.buffer, raw.byteOffset, n);
    case 'I64': {
      const src = new BigInt64Array(raw.buffer, raw.byteOffset, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v < -2147483648n || v > 2147483647n) throw new Error(`${where}: I64 value ${v} at index ${i} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    default:
      throw new Error(`${where}: dtype ${dtype} is not supported for reading (supported: F32, F16, BF16, F64, I32, I64)`);
  }
}

// ---- header ----

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** Tensors in data order (sorted by begin offset); offsets relative to the data section. */
  entries: { name: string; dtype: SafeDType; shape: number[]; begin: number; end: number }[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validate a parsed header against a data section of `dataBytes` bytes. `file` names the file in errors. */
export function validateHeader(json: unknown, dataBytes: number, file: string): ParsedHeader {
  const bad = (msg: string): never => { throw new Error(`safetensors ${file}: ${msg}`); };
  if (!isObject(json)) bad(`header is not a JSON object`);
  const header = json as Record<string, unknown>;
  const metadata: Record<string, string> = {};
  const entries: ParsedHeader['entries'] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(v)) bad(`__metadata__ must be an object of strings`);
      for (const [k, s] of Object.entries(v as object)) {
        if (typeof s !== 'string') bad(`__metadata__.${k} must be a string, got ${JSON.stringify(s)}`);
        metadata[k] = s as string;
      }
      continue;
    }
    if (!isObject(v)) bad(`tensor "${name}": entry is not an object`);
    const e = v as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) bad(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape)) bad(`tensor "${name}": shape must be an array`);
    for (const d of shape as unknown[]) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        bad(`tensor "${name}": invalid dimension ${JSON.stringify(d)} in shape ${JSON.stringify(shape)} (must be a non-negative integer)`);
      }
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => typeof o === 'number' && Number.isSafeInteger(o))) {
      bad(`tensor "${name}": data_offsets must be two integers, got ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as number[];
    if (begin < 0 || end < begin || end > dataBytes) {
      bad(`tensor "${name}": data_offsets [${begin}, ${end}] lie outside the data section of ${dataBytes} bytes`);
    }
    const want = numelOf(shape as number[]) * DTYPE_BYTES[dtype as SafeDType];
    if (end - begin !== want) {
      bad(`tensor "${name}": data_offsets span ${end - begin} bytes but shape ${JSON.stringify(shape)} ${dtype} needs ${want}`);
    }
    entries.push({ name, dtype: dtype as SafeDType, shape: [...(shape as number[])], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    const p = entries[i - 1];
    const c = entries[i];
    if (c.begin < p.end) bad(`tensors "${p.name}" [${p.begin}, ${p.end}] and "${c.name}" [${c.begin}, ${c.end}] overlap`);
  }
  return { metadata, entries };
}

// ---- one file ----

export class SafetensorsFile implements TensorReader {
  private readonly byName = new Map<string, TensorInfo>();

  private constructor(
    /** the file's path (or URL, or picked file name) */
    readonly path: string,
    private src: ByteSource | null,
    readonly metadata: Record<string, string>,
    /** Byte offset of the data section (8 + header length). */
    readonly dataOffset: number,
    infos: TensorInfo[],
  ) {
    for (const i of infos) this.byName.set(i.name, i);
  }

  /**
   * Open and validate a .safetensors file: a path (Node) or a ByteSource (a URL or a File: see sources.ts). Throws a
   * one-line error naming the file for any malformed header.
   */
  static async open(file: string | ByteSource): Promise<SafetensorsFile> {
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors: only little-endian hosts are supported');
    const src = typeof file === 'string' ? pathByteSource(file, 'safetensors') : file;
    const path = src.name;
    const read = (into: Uint8Array, at: number) => src.read(into, at).catch((e: Error) => {
      throw new Error(e.message.startsWith('safetensors ') ? e.message : `safetensors ${e.message}`);
    });
    try {
      const size = await src.size();
      if (size < 8) throw new Error(`safetensors ${path}: file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = new Uint8Array(8);
      await read(lenBuf, 0);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(size - 8)) throw new Error(`safetensors ${path}: header length ${n} is larger than the file (${size} bytes)`);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`safetensors ${path}: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`);
      const headerBuf = new Uint8Array(Number(n));
      await read(headerBuf, 8);
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBuf));
      } catch (e) {
        throw new Error(`safetensors ${path}: header is not valid JSON (${(e as Error).message.split('\n')[0]})`);
      }
      const dataOffset = 8 + Number(n);
      const { metadata, entries } = validateHeader(json, size - dataOffset, path);
      const infos = entries.map((e) => ({
        name: e.name, dtype: e.dtype, shape: e.shape, file: path, byteOffset: dataOffset + e.begin, byteLength: e.end - e.begin,
      }));
      return new SafetensorsFile(path, src, metadata, dataOffset, infos);
    } catch (e) {
      await src.close();
      throw e;
    }
  }

  /** Tensor names in data order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const i = this.byName.get(name);
    if (!i) throw new Error(`safetensors ${this.path}: no tensor named "${name}"`);
    return i;
  }

  infos(): TensorInfo[] {
    return [...this.byName.values()];
  }

  /** The stored bytes of one tensor, in a fresh (8-byte aligned) buffer. */
  async readBytes(name: string): Promise<Uint8Array> {
    const i = this.info(name);
    if (!this.src) throw new Error(`safetensors ${this.path}: file is closed`);
    const out = new Uint8Array(i.byteLength);
    await this.src.read(out, i.byteOffset).catch((e: Error) => {
      throw new Error(e.message.startsWith('safetensors ') ? e.message : `safetensors ${e.message}`);
    });
    return out;
  }

  /** One tensor converted to Float32Array (F32/F16/BF16/F64) or Int32Array (I32/I64). */
  async readTensor(name: string): Promise<LoadedTensor> {
    const i = this.info(name);
    if (!FLOAT_DTYPES.includes(i.dtype) && !INT_DTYPES.includes(i.dtype)) {
      throw new Error(`${this.where(name)}: dtype ${i.dtype} is not supported for reading (supported: F32, F16, BF16, F64, I32, I64)`);
    }
    const raw = await this.readBytes(name);
    return { name, dtype: i.dtype, shape: [...i.shape], data: convertBytes(raw, i.dtype, this.where(name)) };
  }

  /** Stream tensors one at a time (all, in data order, or the given names). Drop each before asking for the next. */
  async *tensors(names?: readonly string[]): AsyncGenerator<LoadedTensor> {
    for (const n of names ?? this.names()) yield await this.readTensor(n);
  }

  async close(): Promise<void> {
    const src = this.src;
    this.src = null;
    await src?.close();
  }

  private where(name: string): string {
    return `safetensors ${this.path}: tensor "${name}"`;
  }
}
