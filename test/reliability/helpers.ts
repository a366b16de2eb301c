// Shared by the reliability tests: run the `dawngrad` CLI as a subprocess and read its one-line verdict, build broken
// model / adapter / dataset directories in a temp dir, and check that a refused command left nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { expect, beforeAll, afterAll } from 'vitest';
import { REPO, HF_TINY } from '../shared.ts';

export { REPO, HF_TINY };
export const ADAPTER = join(HF_TINY, 'adapter');
const MAIN = join(REPO, 'packages/train/src/cli/main.ts');
const HOOKED = join(REPO, 'test/reliability/hooked-cli.ts');
// tsx by absolute URL: a test may run the CLI from a temp working directory, where `--import tsx` would not resolve
const TSX = pathToFileURL(createRequire(join(REPO, 'package.json')).resolve('tsx')).href;

// ---- the CLI as a subprocess ----

export interface CliResult {
  /** exit code (null when killed by a signal) */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stderr without Dawn's and the Vulkan loader's own warnings (see dawnNoise) */
  stderr: string;
  /** the non-empty lines of `stderr` */
  lines: string[];
  /** stderr as written, noise included */
  rawStderr: string;
  ms: number;
}

/**
 * Lines a native library writes straight to file descriptor 2, which the process cannot intercept (no dup2 in Node):
 * Dawn's "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced ..." on every lavapipe start, and
 * the Vulkan loader's "Warning: ..." with a C++ source-position continuation line when it finds no driver.
 */
export function dawnNoise(line: string): boolean {
  return line.trim() === '' || /^Warning: /.test(line) || /^\s+at \S+ \(.*\.(cpp|cc|h):\d+\)$/.test(line);
}

/** What Dawn writes to stderr when it starts on lavapipe: a refusal whose raw stderr matches it started the GPU. */
export const DAWN_STARTED = /artificially reduced|llvmpipe/;

export interface CliOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  cwd?: string;
  /** run hooked-cli.ts (the CLI with the DAWNGRAD_TEST_* train hooks of `env`) instead of main.ts */
  hooked?: boolean;
  /** written to the command's stdin (default: no stdin at all) */
  input?: string | Buffer;
}

/** Start `node --import tsx packages/train/src/cli/main.ts ...args` (measured ~2x faster to start than `pnpm -s dawngrad`). */
export function startCli(args: string[], o: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const t0 = performance.now();
  const env = { ...process.env, ...o.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(process.execPath, ['--import', TSX, o.hooked ? HOOKED : MAIN, ...args], { cwd: o.cwd ?? REPO, env, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (o.input !== undefined) child.stdin!.end(o.input);
  let stdout = '';
  let rawStderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (rawStderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = rawStderr.split('\n').filter((l) => !dawnNoise(l));
      resolve({ code, signal, stdout, stderr: lines.join('\n'), lines, rawStderr, ms: performance.now() - t0 });
    });
  });
  return { child, done };
}

export function dawngrad(args: string[], o: CliOptions = {}): Promise<CliResult> {
  return startCli(args, o).done;
}

/** The refusal contract: the given exit code, and stderr (noise aside) exactly one `dawngrad: ...` line matching `msg`. */
export function expectRefusal(r: CliResult, code: number, msg: RegExp): void {
  const why = `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}, stderr:\n${r.rawStderr}`;
  expect(r.lines, why).toHaveLength(1);
  expect(r.lines[0], why).toMatch(/^dawngrad: /);
  expect(r.lines[0], why).toMatch(msg);
  expect(r.code, why).toBe(code);
}

// ---- temp dirs and "nothing written" ----

export function tempDir(prefix = 'dawngrad-rel-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Every path under `dir` (relative, sorted), to compare before and after a refused command. */
export function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      out.push(r);
      if (statSync(join(d, name)).isDirectory()) walk(join(d, name), r);
    }
  };
  walk(dir, '');
  return out;
}

/**
 * Every file under `dir` with its bytes (base64; a symlink as 'link', never followed) and every directory (as 'dir',
 * its key ending in '/'), to show that a refused command changed nothing.
 */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, n.name);
      if (n.isDirectory()) {
        out.set(`${rel}${n.name}/`, 'dir');
        walk(p, `${rel}${n.name}/`);
      } else out.set(`${rel}${n.name}`, n.isSymbolicLink() ? 'link' : readFileSync(p).toString('base64'));
    }
  };
  walk(dir, '');
  return out;
}

// ---- a tiny dataset in the jsonl layout ----

const WORDS = [
  ['bad', 'awful', 'hate', 'terrible', 'sad'],
  ['ok', 'fine', 'today', 'the', 'meeting'],
  ['great', 'love', 'happy', 'good', 'wonderful'],
];

/** `n` short tweets cycling through the three labels (seeded, so every run sees the same text). */
export function tweets(n: number, seed = 1): { text: string; label: number }[] {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Array.from({ length: n }, (_, i) => {
    const label = i % 3;
    const len = 2 + Math.floor(rand() * 4);
    const text = Array.from({ length: len }, () => WORDS[label]![Math.floor(rand() * 5)]!).join(' ');
    return { text, label };
  });
}

export function jsonl(rows: readonly object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** train/validation/test .jsonl in `dir` (created); `override` replaces a split's file text (null: leave it out). */
export function writeData(dir: string, sizes = { train: 48, validation: 6, test: 6 }, override: Record<string, string | null> = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const [split, n] of Object.entries(sizes)) {
    const text = split in override ? override[split] : jsonl(tweets(n, split.length));
    if (text !== null && text !== undefined) writeFileSync(join(dir, `${split}.jsonl`), text);
  }
  return dir;
}

// ---- model directories, broken on purpose ----

const MODEL_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];

/** A copy of hf-tiny in `dir` (a temp dir, never the repository). */
export function copyModel(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of MODEL_FILES) copyFileSync(join(HF_TINY, f), join(dir, f));
  return dir;
}

export function copyAdapter(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) copyFileSync(join(ADAPTER, f), join(dir, f));
  return dir;
}

export function editJson(path: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(j);
  writeFileSync(path, JSON.stringify(j, null, 2));
}

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A safetensors file taken apart: its header (entries and __metadata__) and its data section. */
export interface RawSafetensors {
  header: Record<string, HeaderEntry | Record<string, string>>;
  data: Uint8Array;
}

/** Parse with no validation (the code under test validates; this only builds inputs for it). */
export function readRaw(path: string): RawSafetensors {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  return { header: JSON.parse(b.subarray(8, 8 + n).toString('utf8')), data: new Uint8Array(b.subarray(8 + n)) };
}

/** Serialise a header (anything, even invalid) and a data section: [u64 n][n bytes of header][data]. */
export function rawBytes(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Buffer {
  const h = Buffer.from(headerText, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

export function writeRaw(path: string, raw: RawSafetensors): void {
  writeFileSync(path, rawBytes(raw.header, raw.data));
}

/** Tensor entries of a header, metadata left out. */
export function entries(raw: RawSafetensors): [string, HeaderEntry][] {
  return Object.entries(raw.header).filter(([k]) => k !== '__metadata__') as [string, HeaderEntry][];
}

/**
 * Split a single-file model in `dir` into two shards plus model.safetensors.index.json (as transformers writes them),
 * removing model.safetensors. `tweak` may edit the shards' tensor lists and the weight_map before they are written.
 */
export function shardModel(
  dir: string,
  tweak: (s: { shards: [string, string[]][]; weightMap: Record<string, string> }) => void = () => {},
): void {
  const raw = readRaw(join(dir, 'model.safetensors'));
  const names = entries(raw).map(([k]) => k);
  const half = Math.ceil(names.length / 2);
  const shards: [string, string[]][] = [
    ['model-00001-of-00002.safetensors', names.slice(0, half)],
    ['model-00002-of-00002.safetensors', names.slice(half)],
  ];
  const weightMap: Record<string, string> = {};
  for (const [file, ts] of shards) for (const t of ts) weightMap[t] = file;
  tweak({ shards, weightMap });
  for (const [file, ts] of shards) {
    const header: Record<string, HeaderEntry> = {};
    const parts: Uint8Array[] = [];
    let off = 0;
    for (const t of ts) {
      const e = raw.header[t] as HeaderEntry;
      const bytes = raw.data.subarray(e.data_offsets[0], e.data_offsets[1]);
      header[t] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + bytes.length] };
      parts.push(bytes);
      off += bytes.length;
    }
    writeFileSync(join(dir, file), rawBytes(header, Buffer.concat(parts)));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: raw.data.length }, weight_map: weightMap }, null, 2));
  rmSync(join(dir, 'model.safetensors'));
}

/** Replace tensor `name` of a raw file with `rows` rows of its first dimension (the data shrinks with it). */
export function cropRows(raw: RawSafetensors, name: string, rows: number): RawSafetensors {
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [k, e] of entries(raw).sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
    let bytes = raw.data.subarray(e.data_offsets[0], e.data_offsets[1]);
    let shape = e.shape;
    if (k === name) {
      const rowBytes = bytes.length / e.shape[0]!;
      bytes = bytes.subarray(0, rows * rowBytes);
      shape = [rows, ...e.shape.slice(1)];
    }
    header[k] = { dtype: e.dtype, shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  return { header, data: Buffer.concat(parts) };
}

// ---- one refusal through one command ----

export type Command = 'train' | 'eval' | 'merge' | 'forward';

export interface Inputs {
  model?: string;
  adapter?: string;
  data: string;
}

let batch: string | null = null;
/** A one-row batch for `dawngrad forward` (input_ids, attention_mask, labels as I32 [1, 4]), written once. */
function batchFile(): string {
  if (batch) return batch;
  const ids = Int32Array.from([1, 17, 42, 4]);
  const tensors = { input_ids: ids, attention_mask: Int32Array.from([1, 1, 1, 1]), labels: ids };
  const header: Record<string, HeaderEntry> = {};
  let off = 0;
  for (const [k, v] of Object.entries(tensors)) {
    header[k] = { dtype: 'I32', shape: [1, 4], data_offsets: [off, off + v.byteLength] };
    off += v.byteLength;
  }
  batch = join(tempDir('dawngrad-batch-'), 'batch.safetensors');
  writeFileSync(batch, rawBytes(header, Buffer.concat(Object.values(tensors).map((v) => Buffer.from(v.buffer)))));
  return batch;
}

/** The smallest useful invocation of `cmd` on these inputs; `out` is where train/merge/forward would write. */
export function commandLine(cmd: Command, i: Inputs, out: string): string[] {
  const model = i.model ?? HF_TINY;
  switch (cmd) {
    case 'train':
      return ['train', '--model', model, '--data', i.data, '--out', out, '--max-train', '8', '--max-eval', '3', '--batch-size', '4',
        '--targets', 'q_proj,v_proj', '--r', '4', '--eval-mode', 'generate', '--no-eval-before', '--system', 'x'];
    case 'eval':
      return ['eval', '--model', model, '--data', i.data, '--max-eval', '3', '--batch-size', '4', '--mode', 'generate',
        ...(i.adapter ? ['--adapter', i.adapter] : [])];
    case 'merge':
      return ['merge', '--model', model, '--adapter', i.adapter ?? ADAPTER, '--out', out];
    case 'forward':
      return ['forward', '--model', model, '--batch', batchFile(), '--out', out, ...(i.adapter ? ['--adapter', i.adapter, '--grads', 'lora'] : [])];
  }
}

/**
 * Run `cmd` from an empty working directory and check the refusal contract: exit `code`, one line matching `msg`,
 * and nothing written — no run directory, no merged model, no forward output, no temp sibling, nothing in the working
 * directory.
 */
export async function expectRefused(cmd: Command, inputs: Inputs, msg: RegExp, code = 1): Promise<CliResult> {
  const cwd = tempDir('dawngrad-cwd-');
  try {
    const r = await dawngrad(commandLine(cmd, inputs, join(cwd, 'out')), { cwd });
    expectRefusal(r, code, msg);
    expect(tree(cwd), `${cmd} wrote something before refusing`).toEqual([]);
    return r;
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

/**
 * The scratch space of a refusal table: a temp dir with a small JSONL dataset, made before the file's tests and removed
 * after them. Read `.tmp` / `.data` inside tests (they are filled in by beforeAll).
 */
export function refusalScratch(): { tmp: string; data: string } {
  const s = { tmp: '', data: '' };
  beforeAll(() => {
    s.tmp = tempDir();
    s.data = writeData(join(s.tmp, 'data'), { train: 8, validation: 3, test: 3 });
  });
  afterAll(() => rmSync(s.tmp, { recursive: true, force: true }));
  return s;
}
