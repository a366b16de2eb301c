import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, symlinkSync, mkdirSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// Imported from the files themselves, not index.ts: these tests need no GPU runtime.
import { SafetensorsFile, f32ToBf16, f32ToF16 } from '../src/safetensors.ts';
import { ShardedCheckpoint, openCheckpoint } from '../src/checkpoint.ts';
import { writeSafetensors, writeShardedSafetensors, type TensorToWrite } from '../src/safetensors-write.ts';
import { loadConfig, validateCheckpoint } from '../src/config.ts';

const SHARED = resolve(fileURLToPath(import.meta.url), '../../../../../shared');
const TINY = join(SHARED, 'models/tweet-mistral-tiny');
const HF = join(SHARED, 'fixtures/hf-tiny');

let tmp: string;
beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), 'dawngrad-st-')); });
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An independent reader for the oracles: the header via JSON.parse, the values via DataView. */
function rawHeader(file: string): { header: Record<string, any>; data: DataView } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  return { header, data: new DataView(buf.buffer, buf.byteOffset + 8 + n) };
}

/** A file with the given header (object or raw text) and data bytes; `len` overrides the length prefix. */
function craft(name: string, header: unknown, data = new Uint8Array(0), len?: bigint): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const pre = Buffer.alloc(8);
  pre.writeBigUInt64LE(len ?? BigInt(h.length));
  const file = join(tmp, name);
  writeFileSync(file, Buffer.concat([pre, h, data]));
  return file;
}

describe('reading the shared checkpoints', () => {
  it('opens sharded bf16 tweet-mistral-tiny, validates it against its config, and converts bf16 bit-exactly', async () => {
    const ck = await openCheckpoint(TINY);
    expect(ck).toBeInstanceOf(ShardedCheckpoint);
    const cfg = loadConfig(join(TINY, 'config.json'));
    validateCheckpoint(cfg, ck.infos());
    const index = JSON.parse(readFileSync(join(TINY, 'model.safetensors.index.json'), 'utf8'));
    expect(ck.names().sort()).toEqual(Object.keys(index.weight_map).sort());
    let total = 0;
    for await (const t of ck.tensors()) {
      const info = ck.info(t.name);
      expect(info.file.endsWith(index.weight_map[t.name])).toBe(true);
      const { header, data } = rawHeader(info.file);
      const h = header[t.name];
      expect(h.dtype).toBe('BF16');
      expect(t.shape).toEqual(h.shape);
      // Oracle: bf16 bits b -> f32 bits b << 16, read with DataView.
      const got = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
      const [begin] = h.data_offsets;
      let diff = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== (data.getUint16(begin + 2 * i, true) << 16) >>> 0) diff++;
      expect(diff).toBe(0);
      total += info.byteLength;
    }
    expect(total).toBe(index.metadata.total_size);
    await ck.close();
  });

  it('reads hf-tiny model.safetensors (F32) and the adapter (F64) against a DataView oracle', async () => {
    const ck = await openCheckpoint(HF);
    validateCheckpoint(loadConfig(join(HF, 'config.json')), ck.infos());
    const name = 'model.layers.1.self_attn.k_proj.weight';
    const t = await ck.readTensor(name);
    const { header, data } = rawHeader(join(HF, 'model.safetensors'));
    expect(t.shape).toEqual(header[name].shape);
    const want = Float32Array.from({ length: t.data.length }, (_, i) => data.getFloat32(header[name].data_offsets[0] + 4 * i, true));
    expect(t.data).toEqual(want);
    await ck.close();

    const ad = await SafetensorsFile.open(join(HF, 'adapter/adapter_model.safetensors'));
    const raw = rawHeader(ad.path);
    expect(ad.names().length).toBe(Object.keys(raw.header).filter((k) => k !== '__metadata__').length);
    for await (const a of ad.tensors()) {
      expect(a.dtype).toBe('F64');
      const off = raw.header[a.name].data_offsets[0];
      for (let i = 0; i < a.data.length; i++) expect(a.data[i]).toBe(Math.fround(raw.data.getFloat64(off + 8 * i, true)));
    }
    await ad.close();
  });

  it('reads reference.safetensors: int32 inputs and f32 logits', async () => {
    const torchDump = await SafetensorsFile.open(join(HF, 'reference.safetensors'));
    const ids = await torchDump.readTensor('input_ids');
    expect(ids.dtype).toBe('I32');
    expect(ids.data).toBeInstanceOf(Int32Array);
    const mask = await torchDump.readTensor('attention_mask');
    expect(mask.shape).toEqual(ids.shape);
    expect([...mask.data].every((m) => m === 0 || m === 1)).toBe(true);
    const logits = torchDump.info('base.logits');
    expect(logits.dtype).toBe('F32');
    expect(logits.shape).toEqual([...ids.shape, 1000]);
    expect(logits.byteLength).toBe(ids.data.length * 1000 * 4);
    await torchDump.close();
  });
});

// Oracle: the IEEE half / bfloat16 formulas evaluated in float64, independently of the reader's table and bit tricks.
const f16 = (h: number) => {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * Math.pow(2, -24) : e === 31 ? (m ? NaN : s * Infinity) : s * Math.pow(2, e - 15) * (1 + m / 1024);
};
const bf16 = (h: number) => {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 7) & 255, m = h & 127;
  return e === 0 ? s * m * Math.pow(2, -133) : e === 255 ? (m ? NaN : s * Infinity) : s * Math.pow(2, e - 127) * (1 + m / 128);
};

describe('half-precision conversions', () => {
  for (const [dtype, oracle] of [['F16', f16], ['BF16', bf16]] as const) {
    it(`${dtype}: all 65536 values`, async () => {
      const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const file = craft(`all-${dtype}.safetensors`, { x: { dtype, shape: [65536], data_offsets: [0, 131072] } }, new Uint8Array(bits.buffer));
      const f = await SafetensorsFile.open(file);
      const { data } = await f.readTensor('x');
      await f.close();
      let bad = 0;
      for (let h = 0; h < 65536; h++) {
        const want = oracle(h);
        if (!(Object.is(data[h], want) || (Number.isNaN(want) && Number.isNaN(data[h])))) bad++;
      }
      expect(bad).toBe(0);
    });
  }

  it('f32 -> bf16 / f16 rounds to the nearest representable value, ties to even', () => {
    const x = new Float32Array(20000);
    for (let i = 0; i < x.length; i++) x[i] = (Math.random() - 0.5) * 2 ** (Math.floor(Math.random() * 40) - 26);
    // Exact ties and edges: halfway between bf16 / f16 neighbours, the largest f16, half the smallest f16 subnormal.
    x.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, -65504, 2 ** -25, 3 * 2 ** -25, 0, -0], 0);
    for (const [encode, decode] of [[f32ToBf16, bf16], [f32ToF16, f16]] as const) {
      // All finite representable values, sorted, with their bit patterns (the oracle grid).
      const grid = new Map<number, number>();
      for (let h = 0; h < 65536; h++) { const v = decode(h); if (Number.isFinite(v) && !grid.has(v)) grid.set(v, h); }
      const vals = [...grid.keys()].sort((a, b) => a - b);
      const bits = encode(x);
      let bad = 0;
      for (let i = 0; i < x.length; i++) {
        const v = x[i];
        let lo = 0, hi = vals.length - 1;
        while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (vals[mid] <= v) lo = mid; else hi = mid; }
        const [a, b] = [vals[lo], vals[hi]];
        const want = v - a < b - v ? a : b - v < v - a ? b : (grid.get(a)! & 1) === 0 ? a : b;
        if (!Object.is(decode(bits[i]), want) && !(want === 0 && decode(bits[i]) === 0)) bad++;
      }
      expect(bad).toBe(0);
    }
  });
});

describe('malformed files are refused with one line naming the file and the problem', () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: [string, () => string, RegExp][] = [
    ['shorter than 8 bytes', () => { const f = join(tmp, 'short.safetensors'); writeFileSync(f, Buffer.from([1, 2, 3])); return f; }, /3 bytes, shorter than the 8-byte header length/],
    ['header length beyond the file', () => craft('len.safetensors', {}, new Uint8Array(0), 1000n), /header length 1000 is larger than the file/],
    ['header length absurd (u64)', () => craft('huge.safetensors', {}, new Uint8Array(0), 2n ** 63n), /header length \d+ is larger than the file/],
    ['header not JSON', () => craft('json.safetensors', '{"a": '), /header is not valid JSON/],
    ['header not an object', () => craft('arr.safetensors', '[1, 2]'), /header is not a JSON object/],
    ['header null', () => craft('null.safetensors', 'null'), /header is not a JSON object/],
    ['metadata not strings', () => craft('meta.safetensors', { __metadata__: { format: 1 } }), /__metadata__\.format must be a string/],
    ['unknown dtype', () => craft('dtype.safetensors', { x: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, f32(1)), /tensor "x": unknown dtype "F12"/],
    ['negative dim', () => craft('neg.safetensors', { x: { dtype: 'F32', shape: [-1, 2], data_offsets: [0, 4] } }, f32(1)), /tensor "x": invalid dimension -1/],
    ['fractional dim', () => craft('frac.safetensors', { x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32(1)), /tensor "x": invalid dimension 1\.5/],
    ['offsets outside the data', () => craft('out.safetensors', { x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), /data_offsets \[0, 16\] lie outside the data section of 8 bytes/],
    ['offsets reversed', () => craft('rev.safetensors', { x: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, f32(2)), /data_offsets \[8, 4\] lie outside/],
    ['size not shape x dtype', () => craft('size.safetensors', { x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(3)), /data_offsets span 8 bytes but shape \[3\] F32 needs 12/],
    ['overlap', () => craft('ovl.safetensors', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, f32(3)), /tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/],
    ['offsets not integers', () => craft('offs.safetensors', { x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32(1)), /data_offsets must be two integers/],
  ];
  for (const [what, make, msg] of cases) {
    it(what, async () => {
      const file = make();
      const err = await SafetensorsFile.open(file).then(() => null, (e: Error) => e);
      expect(err?.message).toMatch(msg);
      expect(err?.message).toContain(file);
      expect(err?.message).not.toContain('\n');
    });
  }

  it('accepts __metadata__, padding spaces and an empty tensor; refuses I64 outside int32 on read', async () => {
    const ints = new BigInt64Array([1n, -5n, 1n, -5n, 2n ** 40n]);
    const file = craft('ok.safetensors', JSON.stringify({
      __metadata__: { format: 'pt' }, e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] },
      i: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, j: { dtype: 'I64', shape: [3], data_offsets: [16, 40] },
    }) + '   ', new Uint8Array(ints.buffer));
    const f = await SafetensorsFile.open(file);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect((await f.readTensor('e')).data.length).toBe(0);
    expect([...(await f.readTensor('i')).data]).toEqual([1, -5]);
    await expect(f.readTensor('j')).rejects.toThrow(/I64 value 1099511627776 at index 2 does not fit in int32/);
    await expect(f.readTensor('nope')).rejects.toThrow(/no tensor named "nope"/);
    await f.close();
    // Other safetensors dtypes are valid in a header (info works) but are not converted.
    const u8 = await SafetensorsFile.open(craft('u8.safetensors', { m: { dtype: 'U8', shape: [3], data_offsets: [0, 3] } }, new Uint8Array([1, 2, 3])));
    expect(u8.info('m')).toMatchObject({ dtype: 'U8', shape: [3], byteLength: 3 });
    expect([...(await u8.readBytes('m'))]).toEqual([1, 2, 3]);
    await expect(u8.readTensor('m')).rejects.toThrow(/tensor "m": dtype U8 is not supported for reading/);
    await u8.close();
  });
});

describe('sharded index validation', () => {
  /** A model dir with two shards (a in s1, b in s2) and the given weight_map. */
  async function shardedDir(name: string, weightMap: Record<string, string>, extra?: (dir: string) => unknown): Promise<string> {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    await writeSafetensors(join(dir, 's1.safetensors'), { a: { dtype: 'F32', shape: [2], data: [1, 2] } });
    await writeSafetensors(join(dir, 's2.safetensors'), { b: { dtype: 'BF16', shape: [1], data: [3] } });
    await extra?.(dir);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    return dir;
  }
  const open = (dir: string) => openCheckpoint(dir).then(() => null, (e: Error) => e.message);

  it('opens a valid index', async () => {
    const ck = await openCheckpoint(await shardedDir('good', { a: 's1.safetensors', b: 's2.safetensors' }));
    expect(ck.names()).toEqual(['a', 'b']);
    expect([...(await ck.readTensor('b')).data]).toEqual([3]);
    await ck.close();
  });
  it('refuses ../ and absolute shard names', async () => {
    expect(await open(await shardedDir('dotdot', { a: '../good/s1.safetensors', b: 's2.safetensors' }))).toMatch(/"\.\.\/good\/s1\.safetensors" must be a plain relative path/);
    const abs = join(tmp, 'good', 's1.safetensors');
    expect(await open(await shardedDir('abs', { a: abs, b: 's2.safetensors' }))).toMatch(/must be a plain relative path/);
  });
  it('refuses a symlink that escapes the model directory', async () => {
    const dir = await shardedDir('link', { a: 'evil.safetensors', b: 's2.safetensors' }, (d) => symlinkSync(join(tmp, 'good', 's1.safetensors'), join(d, 'evil.safetensors')));
    expect(await open(dir)).toMatch(/"evil\.safetensors" is a symlink to .*, outside/);
  });
  it('refuses a missing shard', async () => {
    expect(await open(await shardedDir('missing', { a: 's1.safetensors', b: 's3.safetensors' }))).toMatch(/file "s3\.safetensors" does not exist/);
  });
  it('refuses a tensor held by two shards', async () => {
    const dir = await shardedDir('twice', { a: 's1.safetensors', b: 's2.safetensors' }, (d) =>
      writeFileSync(join(d, 's2.safetensors'), readFileSync(join(d, 's1.safetensors'))));
    expect(await open(dir)).toMatch(/tensor "a" is in two shards, s1\.safetensors and s2\.safetensors/);
  });
  it('refuses weight_map entries that disagree with the shard headers', async () => {
    expect(await open(await shardedDir('wrong', { a: 's2.safetensors', b: 's1.safetensors' }))).toMatch(/weight_map puts "a" in s2\.safetensors, but it is in s1\.safetensors/);
    expect(await open(await shardedDir('ghost', { a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors' }))).toMatch(/puts "c" in s2\.safetensors, but no shard holds it/);
    const unlisted = await shardedDir('unlisted', { a: 's1.safetensors', b: 's2.safetensors' }, (d) => writeSafetensors(join(d, 's2.safetensors'), {
      b: { dtype: 'F32', shape: [1], data: [0] }, c: { dtype: 'F32', shape: [1], data: [0] },
    }));
    expect(await open(unlisted)).toMatch(/shard s2\.safetensors holds "c", which the weight_map does not list/);
  });
});

describe('writing', () => {
  const tensors = (): Record<string, TensorToWrite> => ({
    w: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 4, 5, 6]) },
    h: { dtype: 'F16', shape: [3], data: [0.5, -1, 65504] },
    b: { dtype: 'BF16', shape: [2], data: () => new Float32Array([1.5, -3]) },
    d: { dtype: 'F64', shape: [1], data: [0.1] },
    i: { dtype: 'I32', shape: [2], data: [7, -8] },
    l: { dtype: 'I64', shape: [2], data: [9, -10] },
  });

  it('round-trips every dtype, with metadata, aligned data and no temp file left', async () => {
    const dir = join(tmp, 'write');
    mkdirSync(dir);
    const file = join(dir, 'x.safetensors');
    await writeSafetensors(file, tensors(), { note: 'hi' });
    expect(readdirSync(dir)).toEqual(['x.safetensors']);
    const n = Number(readFileSync(file).readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const f = await SafetensorsFile.open(file);
    expect(f.metadata).toEqual({ format: 'pt', note: 'hi' });
    const got: Record<string, number[]> = {};
    for await (const t of f.tensors()) got[t.name] = [...t.data];
    expect(got).toEqual({ w: [1, -2, 3.5, 4, 5, 6], h: [0.5, -1, 65504], b: [1.5, -3], d: [Math.fround(0.1)], i: [7, -8], l: [9, -10] });
    expect(f.info('h').dtype).toBe('F16');
    await f.close();
  });

  it('refuses bad data and leaves an existing file untouched when a write fails', async () => {
    const file = join(tmp, 'keep.safetensors');
    await writeSafetensors(file, { a: { dtype: 'F32', shape: [1], data: [1] } });
    const before = readFileSync(file);
    await expect(writeSafetensors(file, { a: { dtype: 'F32', shape: [2], data: [1] } })).rejects.toThrow(/tensor "a" has 1 values for shape \[2\]/);
    await expect(writeSafetensors(file, { a: { dtype: 'I32', shape: [1], data: [2 ** 31] } })).rejects.toThrow(/value 2147483648 at index 0 is not a I32/);
    await expect(writeSafetensors(file, { a: { dtype: 'F32', shape: [1], data: () => { throw new Error('boom'); } } })).rejects.toThrow('boom');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('writes shards of bounded size plus an index that openCheckpoint reads back', async () => {
    const dir = join(tmp, 'sharded');
    mkdirSync(dir);
    const src: Record<string, TensorToWrite> = {};
    for (let k = 0; k < 5; k++) src[`t${k}`] = { dtype: 'F32', shape: [10], data: Float32Array.from({ length: 10 }, (_, i) => k * 100 + i) };
    const res = await writeShardedSafetensors(dir, src, { maxShardBytes: 100 });
    expect(res.files.map((f) => f.slice(dir.length + 1))).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(200);
    expect(index.weight_map.t4).toBe('model-00003-of-00003.safetensors');
    const ck = await openCheckpoint(dir);
    for await (const t of ck.tensors()) expect([...t.data]).toEqual([...(src[t.name].data as Float32Array)]);
    await ck.close();
    // Rewriting the same folder as one file removes the stale index.
    const one = await writeShardedSafetensors(dir, src, { maxShardBytes: 1e6 });
    expect(one.index).toBeNull();
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(false);
    expect((await openCheckpoint(dir)).names()).toEqual(Object.keys(src));
  });
});
