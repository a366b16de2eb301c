// Files of a Hugging Face model directory: which ones exist, safe resolution of names found inside them, JSON reading.
// A name read from a file (a shard in model.safetensors.index.json) is untrusted input: it must stay inside the model
// directory. Symlinks are followed and checked too, with one allowance: in the Hugging Face cache a snapshot's files are
// symlinks into the repository's blobs/ folder (models--Org--Name/snapshots/<rev>/x -> ../../blobs/<hash>).
// Node only: a browser reads the same files through a FileSource (sources.ts).
import { nodeApi } from '@dawngrad/tensor';

const { existsSync, realpathSync, readFileSync, statSync } = nodeApi.fs;
const { basename, dirname, isAbsolute, join, relative, resolve } = nodeApi.path;

/** Parse a JSON file, with a one-line error naming the file. */
export function readJsonFile(path: string, what = 'JSON file'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${path}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Read a JSON file that must hold an object. */
export function readJsonObject(path: string, what = 'JSON file'): Record<string, unknown> {
  const v = readJsonFile(path, what);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what} ${path}: top level is not a JSON object`);
  return v as Record<string, unknown>;
}

function isWithin(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** Real folders a model directory's files may resolve into: the directory itself and, in the HF cache, its blobs/. */
function allowedRoots(dir: string): string[] {
  const real = realpathSync(dir);
  const roots = [real];
  if (basename(dirname(real)) === 'snapshots') {
    const blobs = join(dirname(dirname(real)), 'blobs');
    if (existsSync(blobs)) roots.push(realpathSync(blobs));
  }
  return roots;
}

/** Refuse a file name that is not a plain relative path (absolute, `..`, empty segments, backslashes). */
export function checkRelativeName(name: unknown, dir: string, what: string): asserts name is string {
  if (typeof name !== 'string' || name === '') throw new Error(`${what}: empty file name`);
  if (name.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(name) || name.includes('\\') || name.split('/').some((s) => s === '..' || s === '.' || s === '')) {
    throw new Error(`${what}: file name ${JSON.stringify(name)} must be a plain relative path inside ${dir}`);
  }
}

/**
 * Resolve a relative file name found inside a model directory. Refuses absolute paths, `..` segments and symlinks that
 * lead outside the directory; the file must exist. `what` describes the referrer for the error message.
 */
export function resolveInside(dir: string, name: string, what: string): string {
  checkRelativeName(name, dir, what);
  const full = resolve(dir, name);
  if (!isWithin(resolve(dir), full)) throw new Error(`${what}: file name ${JSON.stringify(name)} leaves ${dir}`);
  if (!existsSync(full)) throw new Error(`${what}: file ${JSON.stringify(name)} does not exist in ${dir}`);
  const real = realpathSync(full);
  if (!allowedRoots(dir).some((r) => isWithin(r, real))) {
    throw new Error(`${what}: file ${JSON.stringify(name)} is a symlink to ${real}, outside ${dir}`);
  }
  if (!statSync(real).isFile()) throw new Error(`${what}: ${JSON.stringify(name)} is not a regular file`);
  return full;
}

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
/** transformers 5 saves the chat template beside tokenizer_config.json instead of inside it. */
export const CHAT_TEMPLATE_FILE = 'chat_template.jinja';
export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** The files of a model directory, as absolute paths; optional ones are null when absent. */
export interface ModelFiles {
  dir: string;
  config: string;
  generationConfig: string | null;
  tokenizer: string | null;
  tokenizerConfig: string | null;
  chatTemplate: string | null;
  /** Either one model.safetensors or an index that names the shards. */
  weights: { kind: 'single'; file: string } | { kind: 'sharded'; index: string } | null;
}

/** Find the HF files in a model directory. config.json is required; weights may be absent (tokenizer-only folders). */
export function modelFiles(dir: string): ModelFiles {
  const d = resolve(dir);
  if (!existsSync(d) || !statSync(d).isDirectory()) throw new Error(`model directory ${dir} does not exist`);
  const opt = (f: string) => (existsSync(join(d, f)) ? join(d, f) : null);
  const config = opt(CONFIG_FILE);
  if (!config) throw new Error(`model directory ${dir}: no ${CONFIG_FILE}`);
  const single = opt(SINGLE_WEIGHTS_FILE);
  const index = opt(INDEX_FILE);
  if (single && index) throw new Error(`model directory ${dir}: both ${SINGLE_WEIGHTS_FILE} and ${INDEX_FILE} exist; remove the stale one`);
  return {
    dir: d,
    config,
    generationConfig: opt(GENERATION_CONFIG_FILE),
    tokenizer: opt(TOKENIZER_FILE),
    tokenizerConfig: opt(TOKENIZER_CONFIG_FILE),
    chatTemplate: opt(CHAT_TEMPLATE_FILE),
    weights: single ? { kind: 'single', file: single } : index ? { kind: 'sharded', index } : null,
  };
}
