// The file-access layer the browser uses, checked in Node: the fixture read over HTTP (urlSource, range requests) and
// from in-memory files (filesSource) gives the same config, tokenizer and tensors as the folder on disk; a server that
// ignores Range still works; names from inside a file cannot leave the source. No GPU needed.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  urlSource, filesSource, dirSource, openCheckpoint, loadConfigFrom, loadConfig, HfTokenizer, SafetensorsFile, readSourceJson, type FileSource,
} from '@dawngrad/model';
import { serveStatic, type StaticServer } from '../examples/browser/server.ts';
import { HF_TINY, TINY_MODEL } from './shared.ts';

let server: StaticServer;
let tmp: string;
const ranges: string[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-sources-'));
  server = await serveStatic({ '/hf-tiny/': HF_TINY, '/tiny/': TINY_MODEL, '/tmp/': tmp });
  server.server.on('request', (req) => req.headers.range && ranges.push(req.headers.range));
});
afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Every tensor of a source's checkpoint, as name → its f32/i32 bytes (compared as bytes: toEqual on 7M numbers is slow). */
async function tensorsOf(src: FileSource | string): Promise<Map<string, Buffer>> {
  const ck = await openCheckpoint(src);
  const out = new Map<string, Buffer>();
  for await (const t of ck.tensors()) out.set(t.name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  await ck.close();
  return out;
}

describe('model files from a URL or from memory', () => {
  it('a sharded bf16 checkpoint over HTTP equals the folder on disk, read one tensor per range request', async () => {
    const src = urlSource(`${server.url}/tiny/`);
    ranges.length = 0;
    const [viaUrl, onDisk] = [await tensorsOf(src), await tensorsOf(TINY_MODEL)];
    expect([...viaUrl.keys()].sort()).toEqual([...onDisk.keys()].sort());
    for (const [name, v] of onDisk) expect(viaUrl.get(name)?.equals(v), name).toBe(true);
    expect(ranges.length).toBeGreaterThanOrEqual(onDisk.size); // headers + one per tensor: never the whole file
    expect(await loadConfigFrom(src)).toEqual({ ...loadConfig(join(TINY_MODEL, 'config.json')) });
  });

  it('the tokenizer from a URL encodes and renders chat like the one from the folder', async () => {
    const a = await HfTokenizer.load(urlSource(`${server.url}/tiny`));
    const b = HfTokenizer.fromDir(TINY_MODEL);
    const text = 'what a game tonight 🏀 #win';
    expect(a.encode(text)).toEqual(b.encode(text));
    const msgs = [{ role: 'user', content: text }];
    expect(a.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(b.applyChatTemplate(msgs, { addGenerationPrompt: true }));
  });

  it('a server that ignores Range: the whole file is fetched once and sliced', async () => {
    let gets = 0;
    const noRange: typeof fetch = async (input, init) => {
      if ((init?.method ?? 'GET') === 'GET') gets++;
      return fetch(input, { ...init, headers: {} }); // drop Range: the server answers 200 with everything
    };
    const src = urlSource(`${server.url}/hf-tiny/`, { fetch: noRange });
    const viaUrl = await tensorsOf(src);
    const onDisk = await tensorsOf(HF_TINY);
    expect([...viaUrl.keys()]).toEqual([...onDisk.keys()]);
    for (const [name, v] of onDisk) expect(viaUrl.get(name)?.equals(v), name).toBe(true);
    expect(gets).toBe(1);
  });

  it('picked files (Blobs, folder-relative names) and bytes read like the folder', async () => {
    const blobs = readdirSync(join(HF_TINY, 'adapter')).map((f) => {
      const file = new File([readFileSync(join(HF_TINY, 'adapter', f))], f);
      Object.defineProperty(file, 'webkitRelativePath', { value: `adapter/${f}` }); // as a picked folder names them
      return file;
    });
    const picked = filesSource(blobs);
    const disk = dirSource(join(HF_TINY, 'adapter'));
    expect(await readSourceJson(picked, 'adapter_config.json')).toEqual(await readSourceJson(disk, 'adapter_config.json'));
    const [a, b] = [await SafetensorsFile.open(await picked.open('adapter_model.safetensors')), await SafetensorsFile.open(await disk.open('adapter_model.safetensors'))];
    for (const n of b.names()) expect(Array.from((await a.readTensor(n)).data)).toEqual(Array.from((await b.readTensor(n)).data));
    const bytes = filesSource({ 'config.json': new TextEncoder().encode('{"a": 1}') }, 'mem');
    expect(await readSourceJson(bytes, 'config.json')).toEqual({ a: 1 });
    await expect(bytes.text('nope.json', 'config')).rejects.toThrow('config: file "nope.json" does not exist in mem');
  });

  it('a shard name leaving the source is refused before any request for it; a missing one is named with its URL', async () => {
    for (const f of ['model.safetensors', 'config.json']) copyFileSync(join(HF_TINY, f), join(tmp, f));
    writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../hf-tiny/model.safetensors' } }));
    const src = urlSource(`${server.url}/tmp/`);
    rmSync(join(tmp, 'model.safetensors'));
    await expect(openCheckpoint(src)).rejects.toThrow(/safetensors index http:\S+\/tmp\/model\.safetensors\.index\.json: file name "\.\.\/hf-tiny\/model\.safetensors" must be a plain relative path/);
    writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'gone.safetensors' } }));
    await expect(openCheckpoint(src)).rejects.toThrow(/: file "gone\.safetensors" does not exist in http:\S+\/tmp$/);
    await expect(loadConfigFrom(urlSource(`${server.url}/nowhere/`))).rejects.toThrow(/^config http:\S+\/nowhere\/config\.json: cannot read \(HTTP 404\)$/);
  });
});
