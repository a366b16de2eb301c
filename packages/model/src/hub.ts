// resolveModel: a local model directory as is, or a hub model id downloaded into the Hugging Face cache layout, so
// the files are shared with Python tools:
//   $HF_HUB_CACHE (default $HF_HOME/hub, HF_HOME default ~/.cache/huggingface)
//     models--Org--Name/
//       blobs/<etag>                        file contents, named by LFS sha256 or git blob id
//       blobs/<etag>.incomplete             a download in progress (resumed with a Range request)
//       snapshots/<commit>/<file>           symlink -> ../../blobs/<etag>
//       refs/<revision>                     the commit a branch/tag resolved to
// Environment: HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HUB_OFFLINE=1 (cache only), HF_HOME, HF_HUB_CACHE.
import { nodeApi } from '@dawngrad/tensor';
import { downloadVerified, headFile, HttpError, type FileMeta, type HttpOptions } from './download.ts';
import {
  CHAT_TEMPLATE_FILE, CONFIG_FILE, GENERATION_CONFIG_FILE, INDEX_FILE, SINGLE_WEIGHTS_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE,
  checkRelativeName,
} from './files.ts';

const { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, copyFileSync, renameSync, rmSync, lstatSync, writeFileSync } = nodeApi.fs;
const { homedir } = nodeApi.os;
const { dirname, join, relative, resolve } = nodeApi.path;
const { randomBytes } = nodeApi.crypto;

export interface HubOptions {
  /** Default: HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default: HF_HOME or ~/.cache/huggingface. */
  hfHome?: string;
  /** Default: HF_HUB_CACHE or <hfHome>/hub. */
  cacheDir?: string;
  /** Default: HF_TOKEN, else the token file <hfHome>/token, else none. */
  token?: string | null;
  /** Default: HF_HUB_OFFLINE is 1/true/yes/on. Offline: use the cache only. */
  offline?: boolean;
  /** Branch, tag or commit. Default: main. */
  revision?: string;
  /** Attempts per file. Default 5. */
  attempts?: number;
  /** Give up on a request that receives nothing for this long. Default 60 s. */
  idleTimeoutMs?: number;
  onProgress?: HttpOptions['onProgress'];
}

export type HubSettings = Required<Omit<HubOptions, 'onProgress'>> & Pick<HubOptions, 'onProgress'>;

const truthy = (v: string | undefined) => ['1', 'true', 'yes', 'on'].includes((v ?? '').toLowerCase());

/** Options merged with the environment and the defaults. */
export function hubSettings(opts: HubOptions = {}, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const hfHome = opts.hfHome ?? env.HF_HOME ?? join(homedir(), '.cache', 'huggingface');
  let token = opts.token !== undefined ? opts.token : env.HF_TOKEN || null;
  if (token === null && opts.token === undefined && existsSync(join(hfHome, 'token'))) {
    token = readFileSync(join(hfHome, 'token'), 'utf8').trim() || null;
  }
  const endpoint = (opts.endpoint ?? env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+(\/.*)?$/.test(endpoint)) throw new Error(`HF_ENDPOINT ${JSON.stringify(endpoint)} is not an http(s) URL`);
  return {
    endpoint,
    hfHome,
    cacheDir: opts.cacheDir ?? env.HF_HUB_CACHE ?? join(hfHome, 'hub'),
    token,
    offline: opts.offline ?? truthy(env.HF_HUB_OFFLINE),
    revision: opts.revision ?? 'main',
    attempts: opts.attempts ?? 5,
    idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
    onProgress: opts.onProgress,
  };
}

/** A hub model id as the hub allows it: `org/name` of letters, digits, `-`, `_`, `.` (no `--` or `..`). */
export function isRepoId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/.test(s) && !s.includes('--') && !s.includes('..') && !/[.-]$/.test(s);
}

/** models--Org--Name under the cache. */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.replace('/', '--')}`);
}

const isCommit = (rev: string) => /^[0-9a-f]{40}$/.test(rev);
const OPTIONAL_FILES = [GENERATION_CONFIG_FILE, TOKENIZER_CONFIG_FILE, CHAT_TEMPLATE_FILE];

export interface ResolvedModel {
  /** The directory holding config.json, tokenizer files and weights. */
  dir: string;
  /** local: a directory given by the caller; cache: every file was already in the HF cache; hub: something was downloaded. */
  source: 'local' | 'cache' | 'hub';
  repoId: string | null;
  commit: string | null;
}

/**
 * A complete cached snapshot for a revision, or a reason why there is none: config.json, tokenizer.json and the
 * weights (model.safetensors, or the index and every shard it names) must all be there.
 */
function cachedSnapshot(repoId: string, revision: string, s: HubSettings): { dir: string; commit: string } | string {
  const repo = repoCacheDir(s.cacheDir, repoId);
  let commit = revision;
  if (!isCommit(revision)) {
    const ref = join(repo, 'refs', revision);
    if (!existsSync(ref)) return `${repoId} (revision ${revision}) is not in the cache at ${repo}`;
    commit = readFileSync(ref, 'utf8').trim();
  }
  const dir = join(repo, 'snapshots', commit);
  const missing = [CONFIG_FILE, TOKENIZER_FILE].filter((f) => !existsSync(join(dir, f)));
  if (existsSync(join(dir, INDEX_FILE))) {
    try {
      const wm = JSON.parse(readFileSync(join(dir, INDEX_FILE), 'utf8')).weight_map as Record<string, string>;
      for (const shard of new Set(Object.values(wm))) if (!existsSync(join(dir, shard))) missing.push(shard);
    } catch {
      missing.push(`a valid ${INDEX_FILE}`);
    }
  } else if (!existsSync(join(dir, SINGLE_WEIGHTS_FILE))) {
    missing.push(SINGLE_WEIGHTS_FILE);
  }
  if (missing.length) return `the cached snapshot ${dir} lacks ${missing.join(', ')}`;
  return { dir, commit };
}

/** Link snapshots/<commit>/<file> to blobs/<etag> (relative symlink, as huggingface_hub does; a copy where links fail). */
function linkSnapshot(blob: string, link: string): void {
  mkdirSync(dirname(link), { recursive: true });
  if (existsSync(link) || lstatSync(link, { throwIfNoEntry: false })) rmSync(link, { force: true });
  try {
    symlinkSync(relative(dirname(link), blob), link);
  } catch {
    copyFileSync(blob, link);
  }
}

/** Write a small text file atomically (refs/<revision>). */
function writeTextAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Download the files of `repoId` at `s.revision` into the cache; returns the snapshot directory. */
async function downloadSnapshot(repoId: string, s: HubSettings): Promise<ResolvedModel> {
  const http: HttpOptions = { token: s.token, idleTimeoutMs: s.idleTimeoutMs, attempts: s.attempts, onProgress: s.onProgress };
  const repo = repoCacheDir(s.cacheDir, repoId);
  const url = (rev: string, file: string) =>
    `${s.endpoint}/${repoId}/resolve/${encodeURIComponent(rev)}/${file.split('/').map(encodeURIComponent).join('/')}`;

  let first: FileMeta;
  try {
    first = await headFile(url(s.revision, CONFIG_FILE), http);
  } catch (e) {
    if (e instanceof HttpError) {
      throw new Error(`model ${repoId} (revision ${s.revision}) is not available from ${s.endpoint}: ${e.message}`);
    }
    // No network: fall back to a complete cached snapshot, as transformers does.
    const cached = cachedSnapshot(repoId, s.revision, s);
    if (typeof cached !== 'string') return { dir: cached.dir, source: 'cache', repoId, commit: cached.commit };
    throw new Error(`cannot reach ${s.endpoint} for ${repoId} (${(e as Error).message}) and ${cached}`);
  }
  const commit = first.commit ?? (isCommit(s.revision) ? s.revision : null);
  if (!commit || !/^[\w.-]+$/.test(commit)) throw new Error(`${url(s.revision, CONFIG_FILE)}: the server sent no usable X-Repo-Commit`);
  const snapshot = join(repo, 'snapshots', commit);

  let downloaded = 0;
  const fetchFile = async (file: string, meta: FileMeta) => {
    const blob = join(repo, 'blobs', meta.etag);
    const link = join(snapshot, file);
    if (!(existsSync(blob) && (meta.size === null || statSync(blob).size === meta.size))) {
      mkdirSync(dirname(blob), { recursive: true });
      const partial = `${blob}.incomplete`;
      await downloadVerified(url(commit, file), partial, meta, http);
      renameSync(partial, blob);
      downloaded++;
    }
    linkSnapshot(blob, link);
  };
  /** HEAD at the resolved commit; null when the file does not exist (404). */
  const head = async (file: string): Promise<FileMeta | null> => {
    try {
      return await headFile(url(commit, file), http);
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) return null;
      throw e;
    }
  };

  await fetchFile(CONFIG_FILE, first);
  const tok = await head(TOKENIZER_FILE);
  if (!tok) throw new Error(`model ${repoId} has no ${TOKENIZER_FILE} at ${s.endpoint} (revision ${s.revision})`);
  await fetchFile(TOKENIZER_FILE, tok);
  for (const f of OPTIONAL_FILES) {
    const m = await head(f);
    if (m) await fetchFile(f, m);
  }
  const single = await head(SINGLE_WEIGHTS_FILE);
  if (single) {
    await fetchFile(SINGLE_WEIGHTS_FILE, single);
  } else {
    const index = await head(INDEX_FILE);
    if (!index) throw new Error(`model ${repoId} has neither ${SINGLE_WEIGHTS_FILE} nor ${INDEX_FILE} (only safetensors weights are supported)`);
    await fetchFile(INDEX_FILE, index);
    let wm: Record<string, unknown>;
    try {
      wm = JSON.parse(readFileSync(join(snapshot, INDEX_FILE), 'utf8')).weight_map;
      if (typeof wm !== 'object' || wm === null) throw new Error('no weight_map');
    } catch (e) {
      throw new Error(`${repoId}: ${INDEX_FILE} is not a valid index (${(e as Error).message})`);
    }
    for (const shard of new Set(Object.values(wm))) {
      checkRelativeName(shard, snapshot, `${repoId}: ${INDEX_FILE}`);
      const m = await head(shard);
      if (!m) throw new Error(`model ${repoId}: shard ${shard} named in ${INDEX_FILE} does not exist on ${s.endpoint}`);
      await fetchFile(shard, m);
    }
  }
  if (!isCommit(s.revision)) writeTextAtomic(join(repo, 'refs', s.revision), commit);
  return { dir: snapshot, source: downloaded > 0 ? 'hub' : 'cache', repoId, commit };
}

/**
 * Resolve a model argument: an existing directory is used as is; otherwise a hub id (`OuteAI/Lite-Oute-1-300M-Instruct`)
 * is downloaded into the HF cache (or, offline, looked up there) and its snapshot directory returned.
 */
export async function resolveModel(idOrDir: string, opts: HubOptions = {}): Promise<ResolvedModel> {
  if (existsSync(idOrDir) && statSync(idOrDir).isDirectory()) {
    return { dir: resolve(idOrDir), source: 'local', repoId: null, commit: null };
  }
  if (!isRepoId(idOrDir)) throw new Error(`model ${JSON.stringify(idOrDir)} is neither a directory nor a hub model id like Org/Name`);
  const s = hubSettings(opts);
  if (s.offline) {
    const cached = cachedSnapshot(idOrDir, s.revision, s);
    if (typeof cached === 'string') throw new Error(`HF_HUB_OFFLINE is set and ${cached}`);
    return { dir: cached.dir, source: 'cache', repoId: idOrDir, commit: cached.commit };
  }
  return downloadSnapshot(idOrDir, s);
}
