// Where a model's or an adapter's files come from: a folder on disk (Node), a URL prefix (fetch, with HTTP range
// requests for the weights), or files in memory or picked by the user (File/Blob/bytes, in a browser). Loading code
// asks a FileSource for files by their relative name and reads weights through a ByteSource, one tensor at a time,
// so the same loaders work in Node and in a browser tab.
//
// A name found inside a file (a shard in model.safetensors.index.json) is untrusted: every source refuses names that
// are not plain relative paths, and the folder source also refuses symlinks that leave the folder (files.ts).
import type { FileHandle } from 'node:fs/promises';
import { nodeApi } from '@dawngrad/tensor';
import { checkRelativeName, resolveInside } from './files.ts';

const { existsSync, readFileSync, statSync } = nodeApi.fs;
const { join, resolve } = nodeApi.path;

/** Random access to one file's bytes. */
export interface ByteSource {
  /** the path, URL or file name, for messages */
  readonly name: string;
  size(): Promise<number>;
  /** Fill `into` with the bytes at [position, position + into.length), or throw `<name>: unexpected end of file`. */
  read(into: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

/** A folder of files by relative name (`config.json`, `adapter/adapter_model.safetensors`). */
export interface FileSource {
  /** the folder, URL or "picked files", for messages */
  readonly name: string;
  /** how one file is named in messages: a path or URL */
  where(file: string): string;
  /** whether the file exists (no error for a bad name: false) */
  has(file: string): Promise<boolean>;
  /** `${what}: …` unless `file` is a plain relative name of an existing file inside the source */
  check(file: string, what: string): Promise<void>;
  /** the file as UTF-8 text; `what` names it in errors (`config`, `tokenizer`) */
  text(file: string, what?: string): Promise<string>;
  /** the file for positioned reads (the weights) */
  open(file: string, what?: string): Promise<ByteSource>;
}

const errText = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** Parse a source's JSON file that must hold an object; one-line errors name the file. */
export async function readSourceJson(src: FileSource, file: string, what = 'JSON file'): Promise<Record<string, unknown>> {
  const text = await src.text(file, what);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${src.where(file)}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what} ${src.where(file)}: top level is not a JSON object`);
  return v as Record<string, unknown>;
}

// ---- Node: a folder on disk ----

/** Read exactly `into.byteLength` bytes at `position` (positioned reads can return short counts). */
export async function readFully(fh: FileHandle, into: Uint8Array, position: number, file: string, what = 'safetensors'): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const chunk = Math.min(into.byteLength - done, 1 << 30);
    const { bytesRead } = await fh.read(into, done, chunk, position + done);
    if (bytesRead === 0) throw new Error(`${what} ${file}: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

/** A file on disk, read with positioned reads (Node). */
export function pathByteSource(path: string, what = 'file'): ByteSource {
  let fh: FileHandle | null = null;
  const handle = async () =>
    (fh ??= await nodeApi.fsp.open(path, 'r').catch((e) => {
      throw new Error(`${what} ${path}: cannot open (${errText(e)})`);
    }));
  return {
    name: path,
    size: async () => (await (await handle()).stat()).size,
    read: async (into, position) => readFully(await handle(), into, position, path, what),
    async close() {
      const h = fh;
      fh = null;
      await h?.close();
    },
  };
}

/** A model or adapter folder on disk (Node). Names resolve inside it, symlinks that leave it are refused. */
export function dirSource(dir: string): FileSource {
  const at = (file: string) => join(dir, file);
  return {
    name: dir,
    where: at,
    has: async (file) => existsSync(resolve(dir, file)),
    check: async (file, what) => void resolveInside(dir, file, what),
    async text(file, what = 'file') {
      try {
        return readFileSync(at(file), 'utf8');
      } catch (e) {
        throw new Error(`${what} ${at(file)}: cannot read (${errText(e)})`);
      }
    },
    async open(file, what = 'safetensors') {
      if (!existsSync(at(file))) throw new Error(`${what} ${at(file)}: cannot open (ENOENT)`);
      if (statSync(at(file)).isDirectory()) throw new Error(`${what} ${at(file)}: is a directory`);
      return pathByteSource(at(file), what);
    },
  };
}

// ---- browser (and Node 20): URLs and in-memory files ----

/**
 * Files under a URL prefix (`https://host/models/tiny/`, or a path relative to the page), read with fetch; the weights
 * with HTTP range requests, so only one tensor at a time is in memory. The server must answer `Range:` (any static file
 * server does) — one that ignores it is detected and the whole file is fetched once instead.
 */
export function urlSource(base: string | URL, opts: { fetch?: typeof fetch } = {}): FileSource {
  const f = opts.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const root = new URL(String(base).endsWith('/') ? String(base) : `${String(base)}/`, (globalThis as { location?: { href: string } }).location?.href);
  const urlOf = (file: string) => new URL(file, root).href;
  const name = root.href.replace(/\/$/, '');
  const get = async (file: string, what: string, init?: RequestInit) => {
    checkRelativeName(file, name, what);
    return fetchAgainOnce(f, urlOf(file), init).catch((e: Error) => {
      throw new Error(`${what} ${urlOf(file)}: cannot fetch (${e.message})`);
    });
  };
  const src: FileSource = {
    name,
    where: urlOf,
    async has(file) {
      try {
        checkRelativeName(file, name, 'file');
        const r = await f(urlOf(file), { method: 'HEAD' });
        return r.ok;
      } catch {
        return false;
      }
    },
    async check(file, what) {
      checkRelativeName(file, name, what);
      if (!(await src.has(file))) throw new Error(`${what}: file ${JSON.stringify(file)} does not exist in ${name}`);
    },
    async text(file, what = 'file') {
      const r = await get(file, what);
      if (!r.ok) throw new Error(`${what} ${urlOf(file)}: cannot read (HTTP ${r.status})`);
      return r.text();
    },
    async open(file, what = 'safetensors') {
      const head = await get(file, what, { method: 'HEAD' });
      if (!head.ok) throw new Error(`${what} ${urlOf(file)}: cannot open (HTTP ${head.status})`);
      const length = Number(head.headers.get('content-length'));
      if (!Number.isSafeInteger(length) || length < 0) {
        // no length without downloading: fall back to the whole file in memory
        const body = new Uint8Array(await (await get(file, what)).arrayBuffer());
        return memoryByteSource(urlOf(file), body);
      }
      return rangeByteSource(urlOf(file), length, f);
    },
  };
  return src;
}

/** A kept-alive connection the server closed meanwhile fails once without any response: ask once more. */
async function fetchAgainOnce(f: typeof fetch, url: string, init?: RequestInit): Promise<Response> {
  try {
    return await f(url, init);
  } catch {
    return f(url, init);
  }
}

function rangeByteSource(url: string, length: number, f: typeof fetch): ByteSource {
  let whole: Uint8Array | null = null; // the server ignored Range: keep what it sent
  return {
    name: url,
    size: async () => length,
    async read(into, position) {
      const end = position + into.byteLength;
      if (end > length) throw new Error(`${url}: unexpected end of file at byte ${length}`);
      if (into.byteLength === 0) return;
      if (!whole) {
        const r = await fetchAgainOnce(f, url, { headers: { Range: `bytes=${position}-${end - 1}` } });
        if (r.status === 206) {
          const got = new Uint8Array(await r.arrayBuffer());
          if (got.byteLength !== into.byteLength) throw new Error(`${url}: unexpected end of file at byte ${position + got.byteLength}`);
          into.set(got);
          return;
        }
        if (!r.ok) throw new Error(`${url}: cannot read bytes ${position}-${end - 1} (HTTP ${r.status})`);
        whole = new Uint8Array(await r.arrayBuffer());
      }
      if (whole.byteLength < end) throw new Error(`${url}: unexpected end of file at byte ${whole.byteLength}`);
      into.set(whole.subarray(position, end));
    },
    close: async () => void (whole = null),
  };
}

/** Bytes already in memory, or a Blob/File (which reads only the slice asked for). */
function memoryByteSource(name: string, data: Uint8Array | Blob): ByteSource {
  const size = data instanceof Uint8Array ? data.byteLength : data.size;
  return {
    name,
    size: async () => size,
    async read(into, position) {
      const end = position + into.byteLength;
      if (end > size) throw new Error(`${name}: unexpected end of file at byte ${size}`);
      into.set(data instanceof Uint8Array ? data.subarray(position, end) : new Uint8Array(await data.slice(position, end).arrayBuffer()));
    },
    close: async () => {},
  };
}

/**
 * Files already in hand: File objects from `<input type="file" multiple>` or a dropped folder (named by
 * `webkitRelativePath` less its first folder, else by `name`), or a map of names to Blobs or bytes.
 */
export function filesSource(files: Iterable<File> | Record<string, Blob | Uint8Array>, name = 'picked files'): FileSource {
  const byName = new Map<string, Blob | Uint8Array>();
  if (Symbol.iterator in Object(files)) {
    for (const file of files as Iterable<File>) {
      const rel = (file as File & { webkitRelativePath?: string }).webkitRelativePath;
      byName.set(rel ? rel.split('/').slice(1).join('/') : file.name, file);
    }
  } else {
    for (const [k, v] of Object.entries(files as Record<string, Blob | Uint8Array>)) byName.set(k, v);
  }
  const where = (file: string) => `${name}/${file}`;
  const take = (file: string, what: string) => {
    checkRelativeName(file, name, what);
    const f = byName.get(file);
    if (!f) throw new Error(`${what}: file ${JSON.stringify(file)} does not exist in ${name}`);
    return f;
  };
  return {
    name,
    where,
    has: async (file) => byName.has(file),
    check: async (file, what) => void take(file, what),
    async text(file, what = 'file') {
      const f = take(file, what);
      return f instanceof Uint8Array ? new TextDecoder().decode(f) : f.text();
    },
    async open(file, what = 'safetensors') {
      return memoryByteSource(where(file), take(file, what));
    },
  };
}

/** A FileSource for a folder path (Node) or the source itself. */
export const toSource = (dirOrSource: string | FileSource): FileSource => (typeof dirOrSource === 'string' ? dirSource(dirOrSource) : dirOrSource);
