// resolveModel against a fake hub served by this test on 127.0.0.1: the /{org}/{name}/resolve/{rev}/{file} route with
// HEAD metadata (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size), Range requests, an LFS redirect to a second
// "storage" server, and switchable faults (a dropped connection, corrupted bytes).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readlinkSync, existsSync, readdirSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
// Imported from the files themselves, not index.ts: these tests need no GPU runtime.
import { resolveModel, hubSettings, repoCacheDir } from '../src/hub.ts';
import { openCheckpoint } from '../src/checkpoint.ts';
import { SafetensorsFile } from '../src/safetensors.ts';
import { writeShardedSafetensors, type TensorToWrite } from '../src/safetensors-write.ts';

const SHARED = resolve(fileURLToPath(import.meta.url), '../../../../../shared');
const HF = join(SHARED, 'fixtures/hf-tiny');
const COMMIT = 'a'.repeat(8) + randomBytes(16).toString('hex');
const TOKEN = 'hf_secret_token';

interface Repo { [file: string]: Buffer }
const repos: Record<string, Repo> = {};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
const isLfs = (file: string) => file.endsWith('.safetensors');

// Faults and a request log, reset per test.
let dropOnce = new Set<string>(); // first GET of these files stops half-way and closes the socket
let corrupt = new Set<string>(); // GETs of these files serve a flipped byte (the advertised sha256 stays right)
let log: { server: 'hub' | 'cdn'; method: string; path: string; range?: string; auth?: string }[] = [];

function serveBytes(req: IncomingMessage, res: ServerResponse, body: Buffer, key: string, headers: Record<string, string>) {
  if (corrupt.has(key)) { body = Buffer.from(body); body[body.length >> 1] ^= 0xff; }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  if (start > body.length) { res.writeHead(416).end(); return; }
  const part = body.subarray(start);
  res.writeHead(m ? 206 : 200, { ...headers, 'content-length': String(part.length), ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
  if (req.method === 'HEAD') { res.end(); return; }
  if (dropOnce.has(key)) {
    dropOnce.delete(key);
    res.write(part.subarray(0, part.length >> 1), () => res.socket?.end()); // FIN before the promised length
    return;
  }
  res.end(part);
}

let hub: Server, cdn: Server, endpoint = '', cdnBase = '';
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-hub-'));
  // Repo 1: hf-tiny as is (one model.safetensors). Repo 2: the same weights re-sharded, weights behind a redirect.
  const files = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
  repos['Org/Tiny'] = Object.fromEntries(files.map((f) => [f, readFileSync(join(HF, f))]));
  const shardDir = join(tmp, 'sharded-src');
  mkdirSync(shardDir);
  const src = await SafetensorsFile.open(join(HF, 'model.safetensors'));
  const tensors: Record<string, TensorToWrite> = {};
  for (const i of src.infos()) tensors[i.name] = { dtype: 'F32', shape: i.shape, data: async () => (await src.readTensor(i.name)).data };
  const written = await writeShardedSafetensors(shardDir, tensors, { maxShardBytes: 700_000 });
  await src.close();
  repos['Org/Sharded'] = Object.fromEntries(files.slice(0, 4).map((f) => [f, readFileSync(join(HF, f))]));
  for (const f of [...written.files, written.index!]) repos['Org/Sharded'][f.slice(shardDir.length + 1)] = readFileSync(f);

  const listen = (s: Server) => new Promise<string>((ok) => s.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
  hub = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    log.push({ server: 'hub', method: req.method!, path, range: req.headers.range, auth: req.headers.authorization });
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repo = m && repos[m[1]];
    if (!m || !repo || (m[2] !== 'main' && m[2] !== COMMIT)) { res.writeHead(404, { 'x-error-code': 'RepositoryNotFound' }).end(); return; }
    const body = repo[m[3]];
    if (!body) { res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': COMMIT }).end(); return; }
    const key = `${m[1]}/${m[3]}`;
    if (isLfs(m[3])) {
      const linked = { 'x-repo-commit': COMMIT, 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length) };
      if (m[1] === 'Org/Sharded') { res.writeHead(302, { ...linked, location: `${cdnBase}/blob/${m[1]}/${m[3]}` }).end(); return; }
      serveBytes(req, res, body, key, { ...linked, etag: `"${sha256(body)}"` });
    } else {
      serveBytes(req, res, body, key, { 'x-repo-commit': COMMIT, etag: `"${sha1(body)}"` });
    }
  });
  cdn = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    log.push({ server: 'cdn', method: req.method!, path, range: req.headers.range, auth: req.headers.authorization });
    const m = /^\/blob\/([^/]+\/[^/]+)\/(.+)$/.exec(path);
    const body = m && repos[m[1]]?.[m[2]];
    if (!body) { res.writeHead(404).end(); return; }
    serveBytes(req, res, body, `${m[1]}/${m[2]}`, {});
  });
  endpoint = await listen(hub);
  cdnBase = await listen(cdn);
});
afterAll(async () => {
  await Promise.all([hub, cdn].map((s) => new Promise((ok) => s.close(ok))));
  rmSync(tmp, { recursive: true, force: true });
});

function fresh(): string {
  dropOnce = new Set(); corrupt = new Set(); log = [];
  return mkdtempSync(join(tmp, 'cache-'));
}
const opts = (cacheDir: string, more: object = {}) => ({ endpoint, cacheDir, token: TOKEN, offline: false, attempts: 3, idleTimeoutMs: 5000, ...more });

describe('resolveModel against a fake hub', () => {
  it('downloads into the HF cache layout, then finds everything there', async () => {
    const cache = fresh();
    const r = await resolveModel('Org/Tiny', opts(cache));
    const repo = repoCacheDir(cache, 'Org/Tiny');
    expect(repo).toBe(join(cache, 'models--Org--Tiny'));
    expect(r).toEqual({ dir: join(repo, 'snapshots', COMMIT), source: 'hub', repoId: 'Org/Tiny', commit: COMMIT });
    expect(readFileSync(join(repo, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    for (const [f, body] of Object.entries(repos['Org/Tiny'])) {
      const etag = isLfs(f) ? sha256(body) : sha1(body);
      expect(readlinkSync(join(r.dir, f))).toBe(`../../blobs/${etag}`);
      expect(readFileSync(join(r.dir, f)).equals(body)).toBe(true);
    }
    expect(readdirSync(join(repo, 'blobs')).some((b) => b.endsWith('.incomplete'))).toBe(false);
    expect(log.every((l) => l.auth === `Bearer ${TOKEN}`)).toBe(true);
    expect(log.filter((l) => l.method === 'GET').every((l) => l.path.includes(`/resolve/${COMMIT}/`))).toBe(true);
    const ck = await openCheckpoint(r.dir);
    expect(ck.names().length).toBeGreaterThan(0);
    await ck.close();

    log = [];
    const again = await resolveModel('Org/Tiny', opts(cache));
    expect(again.source).toBe('cache');
    expect(log.filter((l) => l.method === 'GET')).toEqual([]);
  });

  it('follows the LFS redirect for shards without sending the token there, and validates the index', async () => {
    const cache = fresh();
    const r = await resolveModel('Org/Sharded', opts(cache));
    const shards = Object.keys(repos['Org/Sharded']).filter(isLfs);
    expect(shards.length).toBeGreaterThan(1);
    const cdnGets = log.filter((l) => l.server === 'cdn' && l.method === 'GET');
    expect(cdnGets.map((l) => l.path.split('/').pop()).sort()).toEqual(shards.sort());
    expect(log.filter((l) => l.server === 'cdn').every((l) => l.auth === undefined)).toBe(true);
    const ck = await openCheckpoint(r.dir);
    const orig = await openCheckpoint(HF);
    expect(ck.names().sort()).toEqual(orig.names().sort());
    const name = 'model.layers.1.mlp.down_proj.weight';
    expect((await ck.readTensor(name)).data).toEqual((await orig.readTensor(name)).data);
    await Promise.all([ck.close(), orig.close()]);
  });

  it('resumes a download after the server drops the connection mid-body', async () => {
    const cache = fresh();
    dropOnce.add('Org/Tiny/model.safetensors');
    const r = await resolveModel('Org/Tiny', opts(cache));
    const body = repos['Org/Tiny']['model.safetensors'];
    const gets = log.filter((l) => l.method === 'GET' && l.path.endsWith('/model.safetensors'));
    expect(gets.length).toBe(2);
    expect(gets[0].range).toBeUndefined();
    // the server wrote half the body before dropping the socket; what reached the client (at most that half — bytes in
    // flight die with the socket) is kept, and only the rest is asked for again
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1] ?? NaN);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(body.length >> 1);
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
  });

  it('refuses a file whose sha256 does not match, leaving nothing behind', async () => {
    const cache = fresh();
    corrupt.add('Org/Tiny/model.safetensors');
    await expect(resolveModel('Org/Tiny', opts(cache))).rejects.toThrow(/download refused after 3 attempts: .*model\.safetensors: sha256 mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)/);
    expect(log.filter((l) => l.method === 'GET' && l.path.endsWith('/model.safetensors')).length).toBe(3);
    const blobs = readdirSync(join(repoCacheDir(cache, 'Org/Tiny'), 'blobs'));
    expect(blobs.includes(sha256(repos['Org/Tiny']['model.safetensors']))).toBe(false);
    expect(blobs.some((b) => b.endsWith('.incomplete'))).toBe(false);
    expect(existsSync(join(repoCacheDir(cache, 'Org/Tiny'), 'refs', 'main'))).toBe(false);
  });

  it('refuses an unknown model or revision with a clear message', async () => {
    const cache = fresh();
    await expect(resolveModel('Org/Nope', opts(cache))).rejects.toThrow(
      new RegExp(`^model Org/Nope \\(revision main\\) is not available from ${endpoint}: .*/Org/Nope/resolve/main/config.json: HTTP 404 \\(no such repo, revision or file\\)$`));
    await expect(resolveModel('Org/Tiny', opts(cache, { revision: 'v9' }))).rejects.toThrow(/revision v9.*HTTP 404/);
  });

  it('offline: serves a complete cache without any request, refuses a missing one', async () => {
    const cache = fresh();
    const online = await resolveModel('Org/Tiny', opts(cache));
    log = [];
    const offline = await resolveModel('Org/Tiny', opts(cache, { offline: true, endpoint: 'http://127.0.0.1:9' }));
    expect(offline).toEqual({ ...online, source: 'cache' });
    expect(log).toEqual([]);
    await expect(resolveModel('Org/Sharded', opts(cache, { offline: true }))).rejects.toThrow(
      `HF_HUB_OFFLINE is set and Org/Sharded (revision main) is not in the cache at ${join(cache, 'models--Org--Sharded')}`);
    rmSync(join(online.dir, 'tokenizer.json'));
    await expect(resolveModel('Org/Tiny', opts(cache, { offline: true }))).rejects.toThrow(/the cached snapshot .* lacks tokenizer\.json/);
  });
});

describe('settings and arguments', () => {
  it('reads HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE', () => {
    const s = hubSettings({}, { HF_ENDPOINT: 'https://mirror.example/', HF_HOME: '/h', HF_TOKEN: 't', HF_HUB_OFFLINE: '1' });
    expect(s).toMatchObject({ endpoint: 'https://mirror.example', hfHome: '/h', cacheDir: join('/h', 'hub'), token: 't', offline: true, revision: 'main' });
    const d = hubSettings({}, { HF_HOME: join(tmp, 'nohome') });
    expect(d).toMatchObject({ endpoint: 'https://huggingface.co', token: null, offline: false });
    const home = mkdtempSync(join(tmp, 'home-'));
    writeFileSync(join(home, 'token'), 'from-file\n');
    expect(hubSettings({}, { HF_HOME: home }).token).toBe('from-file');
    expect(() => hubSettings({}, { HF_ENDPOINT: 'ftp://x' })).toThrow(/HF_ENDPOINT "ftp:\/\/x" is not an http\(s\) URL/);
  });

  it('uses a local directory as is and refuses arguments that are neither', async () => {
    expect(await resolveModel(HF)).toEqual({ dir: HF, source: 'local', repoId: null, commit: null });
    await expect(resolveModel('./no/such/dir')).rejects.toThrow('model "./no/such/dir" is neither a directory nor a hub model id like Org/Name');
    await expect(resolveModel('Org/../etc')).rejects.toThrow(/neither a directory nor a hub model id/);
  });
});
