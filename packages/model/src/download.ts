// HTTP for the hub cache: HEAD a file for its metadata, and GET it into a temp file with resume (Range), size and
// sha256 checks, and retries. Node's built-in fetch; no other client.
//
// Requests go to the configured endpoint. The hub answers LFS files (weights) with a redirect to its storage host; we
// follow it, but the token is only ever sent to the endpoint's own origin, and an https endpoint is never
// redirected to plain http.
import { nodeApi } from '@dawngrad/tensor';

const { createHash } = nodeApi.crypto;
const { createReadStream } = nodeApi.fs;
const { open, rm, stat } = nodeApi.fsp;

export interface HttpOptions {
  token: string | null;
  /** Abort a request that receives nothing for this long (headers or body). */
  idleTimeoutMs: number;
  /** Attempts per file (connection drops resume where they stopped; a checksum mismatch starts over). */
  attempts: number;
  onProgress?: (p: { url: string; received: number; total: number }) => void;
}

/** What a HEAD tells us about a file in a repo. */
export interface FileMeta {
  /** The commit the revision resolved to (X-Repo-Commit). */
  commit: string | null;
  /** Blob id used as the cache file name: the LFS sha256 (X-Linked-Etag) or the git blob id (ETag). */
  etag: string;
  size: number | null;
  /** True when etag is a sha256 of the content, which we then verify. */
  isSha256: boolean;
}

/** An HTTP status the caller may want to act on (404: the file is absent). */
export class HttpError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

const normalizeEtag = (e: string | null) => (e ? e.replace(/^W\//, '').replace(/^"|"$/g, '') : null);

/** fetch with an idle timer that the caller refreshes while reading the body; manual redirects. */
async function request(url: string, init: RequestInit, opts: HttpOptions) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no data for ${opts.idleTimeoutMs} ms`)), opts.idleTimeoutMs);
  try {
    const res = await fetch(url, { ...init, redirect: 'manual', signal: ac.signal });
    return { res, timer };
  } catch (e) {
    clearTimeout(timer);
    throw e;
  }
}

/**
 * Send a request to `url` (on the endpoint), following up to 5 redirects: the token goes only to `origin`, and an https
 * chain never downgrades to http. For HEAD, `stopAtForeignRedirect` returns the redirect response itself (the hub puts
 * the LFS metadata on it) instead of asking the storage host.
 */
async function send(url: string, method: 'HEAD' | 'GET', headers: Record<string, string>, opts: HttpOptions, stopAtForeignRedirect: boolean) {
  const origin = new URL(url).origin;
  let current = url;
  for (let hop = 0; hop <= 5; hop++) {
    const sameOrigin = new URL(current).origin === origin;
    const h: Record<string, string> = { 'user-agent': 'dawngrad/0.1', ...headers };
    if (sameOrigin && opts.token) h.authorization = `Bearer ${opts.token}`;
    const { res, timer } = await request(current, { method, headers: h }, opts);
    if (res.status < 300 || res.status >= 400 || !res.headers.get('location')) return { res, timer };
    const next = new URL(res.headers.get('location') as string, current);
    if (new URL(current).protocol === 'https:' && next.protocol !== 'https:') {
      clearTimeout(timer);
      throw new Error(`${url}: refusing a redirect from https to ${next.protocol}`);
    }
    if (stopAtForeignRedirect && next.origin !== origin) return { res, timer };
    clearTimeout(timer);
    await res.body?.cancel();
    current = next.href;
  }
  throw new Error(`${url}: too many redirects`);
}

function statusError(url: string, status: number): HttpError {
  const hint =
    status === 401 || status === 403 ? ' (a private or gated repo needs HF_TOKEN)' : status === 404 ? ' (no such repo, revision or file)' : '';
  return new HttpError(`${url}: HTTP ${status}${hint}`, status);
}

/** HEAD a file: commit, etag and size, as huggingface_hub reads them. */
export async function headFile(url: string, opts: HttpOptions): Promise<FileMeta> {
  const { res, timer } = await send(url, 'HEAD', { 'accept-encoding': 'identity' }, opts, true);
  clearTimeout(timer);
  if (res.status >= 400) throw statusError(url, res.status);
  const linked = normalizeEtag(res.headers.get('x-linked-etag'));
  const etag = linked ?? normalizeEtag(res.headers.get('etag'));
  if (!etag) throw new Error(`${url}: the server sent no ETag, so the file cannot be cached`);
  if (!/^[A-Za-z0-9._-]+$/.test(etag)) throw new Error(`${url}: unusable ETag ${JSON.stringify(etag)}`);
  const sizeHeader = res.headers.get('x-linked-size') ?? (res.status < 300 ? res.headers.get('content-length') : null);
  const size = sizeHeader === null ? null : Number(sizeHeader);
  return {
    commit: res.headers.get('x-repo-commit'),
    etag,
    size: size !== null && Number.isSafeInteger(size) && size >= 0 ? size : null,
    isSha256: /^[0-9a-f]{64}$/i.test(etag),
  };
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** One GET into `partial`, resuming from its current length. Returns when the body ended (complete or not). */
async function getInto(url: string, partial: string, meta: FileMeta, opts: HttpOptions): Promise<void> {
  const have = await stat(partial).then((s) => s.size, () => 0);
  if (meta.size !== null && have === meta.size) return;
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (have > 0) headers.range = `bytes=${have}-`;
  const { res, timer } = await send(url, 'GET', headers, opts, false);
  try {
    if (res.status === 416 && have > 0) {
      await rm(partial, { force: true }); // our partial file is longer than the server's: start over
      throw new Error(`${url}: server refused to resume at byte ${have}`);
    }
    if (res.status >= 400) throw statusError(url, res.status);
    let offset = 0;
    if (res.status === 206) {
      const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== have) throw new Error(`${url}: server resumed at the wrong offset (${res.headers.get('content-range')})`);
      offset = have;
    }
    const fh = await open(partial, offset > 0 ? 'r+' : 'w');
    try {
      let pos = offset;
      if (!res.body) return;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        timer.refresh();
        await fh.write(chunk, 0, chunk.byteLength, pos);
        pos += chunk.byteLength;
        opts.onProgress?.({ url, received: pos, total: meta.size ?? -1 });
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Download `url` to `partial` (a temp name beside the final file), resuming partial content with Range requests, then
 * check the size and, when the etag is a sha256, the hash. A bad file is deleted and fetched again; after
 * `opts.attempts` tries the download is refused. On success `partial` holds the verified file (the caller renames it).
 */
export async function downloadVerified(url: string, partial: string, meta: FileMeta, opts: HttpOptions): Promise<void> {
  let lastError: Error | null = null;
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    try {
      await getInto(url, partial, meta, opts);
    } catch (e) {
      if (e instanceof HttpError && e.status < 500 && e.status !== 408 && e.status !== 429) throw e;
      lastError = e as Error; // a dropped connection or a server error: try again, resuming
      continue;
    }
    const size = (await stat(partial)).size;
    if (meta.size !== null && size !== meta.size) {
      lastError = new Error(`${url}: got ${size} bytes, expected ${meta.size}`);
      if (size > meta.size) await rm(partial, { force: true });
      continue;
    }
    if (meta.isSha256) {
      const got = await sha256File(partial);
      if (got !== meta.etag.toLowerCase()) {
        await rm(partial, { force: true });
        lastError = new Error(`${url}: sha256 mismatch (expected ${meta.etag}, got ${got})`);
        continue;
      }
    }
    return;
  }
  // A partial file from dropped connections stays for the next run to resume; bad content was already deleted.
  throw new Error(`download refused after ${opts.attempts} attempts: ${(lastError?.message ?? 'unknown error').split('\n')[0]}`);
}
