// The GPU machine's path, run here on lavapipe: scripts/gpu/pack.sh --fast packs a folder (the bundles, Dawn, peers,
// configs, run.sh), and scripts/gpu/session.sh --smoke runs everything a GPU session runs through that folder's run.sh —
// info (plain and with the GPU toggles), gpu-matmul and gpu-step at tiny sizes — writing results/gpu-*.json and the
// summary. The pack itself must stay as packed (run.sh unpacks elsewhere): only compressed binaries travel.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO } from './shared.ts';

const TIMEOUT = 600_000;
let tmp: string;
let pack: string;

/** Every file under dir, relative to it. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

beforeAll(() => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'dawngrad-gpu-pack-')));
  pack = join(tmp, 'pack');
  const r = spawnSync('bash', ['scripts/gpu/pack.sh', '--fast', '--out', pack], { cwd: REPO, encoding: 'utf8', timeout: TIMEOUT });
  if (r.status !== 0) throw new Error(`pack.sh failed: ${r.stderr}`);
}, TIMEOUT);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('scripts/gpu: pack, then a smoke session through run.sh', () => {
  it('packs the bundles, the native packages compressed, the peers, the configs and run.sh', () => {
    const f = files(pack);
    for (const want of ['BUILD.json', 'dawngrad.mjs.xz', 'bench.mjs.xz', 'run.sh', 'peers/torch_cuda.py', 'peers/torch_step.py',
      'lite-oute-300m-config.json', 'tiny-config.json', 'node_modules/webgpu/package.json', `node_modules/webgpu/dist/${process.platform}-${process.arch}/dawn.node.xz`]) {
      expect(f, want).toContain(want);
    }
    expect(f.filter((p) => p.endsWith('.node'))).toEqual([]); // binaries travel compressed only
    expect(f).not.toContain('node.xz'); // --fast: run.sh takes the node on PATH
  });

  it('session.sh --smoke runs every part through run.sh and writes the GPU results and the summary', () => {
    const out = join(tmp, 'out');
    const env: NodeJS.ProcessEnv = { ...process.env, DAWNGRAD_GPU_DIR: pack, OUT: out, DAWNGRAD_GPU_RUN: join(tmp, 'run') };
    const r = spawnSync('bash', ['scripts/gpu/session.sh', '--smoke'], { cwd: REPO, env, encoding: 'utf8', timeout: TIMEOUT });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const part of ['info', 'info-json', 'info-toggles', 'gpu-matmul', 'gpu-step']) expect(r.stdout).toMatch(new RegExp(`^${part} +exit 0 `, 'm'));

    const info = JSON.parse(readFileSync(join(out, 'info.json'), 'utf8'));
    expect(info.adapterClass).toBe('cpu'); // lavapipe, named as such
    expect(JSON.parse(readFileSync(join(out, 'info-toggles.json'), 'utf8')).toggles.value).toEqual(['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia']);

    const mm = JSON.parse(readFileSync(join(out, 'gpu-matmul.json'), 'utf8'));
    expect(mm.rows.length).toBeGreaterThan(3);
    for (const row of mm.rows) expect(row.ours, row.case).toBeGreaterThan(0);
    expect(mm.machine.adapter.isSoftware).toBe(true);
    const st = JSON.parse(readFileSync(join(out, 'gpu-step.json'), 'utf8'));
    expect(st.rows.map((x: { case: string }) => x.case)).toEqual([
      'Lite-Oute-300M, 1 layer B2 × T16 forward', 'Lite-Oute-300M, 1 layer B2 × T16 LoRA train step',
      'Lite-Oute-300M, 1 layer B2 × T16 forward (ours mixed)', 'Lite-Oute-300M, 1 layer B2 × T16 LoRA train step (ours mixed)',
      'tweet-mistral-tiny B2 × T16 forward', 'tweet-mistral-tiny B2 × T16 LoRA train step',
      'tweet-mistral-tiny B2 × T16 forward (ours mixed)', 'tweet-mistral-tiny B2 × T16 LoRA train step (ours mixed)',
    ]);
    for (const row of st.rows) expect(row.ours, row.case).toBeGreaterThan(0);
    const prof = st.info.cases[1].profile.step;
    expect(prof.dispatches).toBeGreaterThan(50);
    expect(prof.matmulShare).toBeGreaterThan(0);
    expect(prof.matmulShare).toBeLessThanOrEqual(1);
    // the peer either ran (a python with torch here) or said why not
    for (const c of st.info.cases) expect(c.torch.modes ?? c.torch.skipped).toBeTruthy();

    expect(readFileSync(join(out, 'gpu-summary.md'), 'utf8')).toMatch(/\| step \(ms, median\) \| ours \| torch f32 \|/);
    expect(r.stdout).toMatch(/== GPU summary — /);
    // run.sh unpacked outside the pack
    expect(files(pack).filter((p) => p.endsWith('.node') || p.endsWith('.mjs'))).toEqual([]);
    expect(statSync(join(tmp, 'run')).isDirectory()).toBe(true);
  }, TIMEOUT);

  it('run.sh refuses a bundle the pack does not hold', () => {
    const r = spawnSync('bash', [join(pack, 'run.sh'), 'nope.mjs'], { cwd: REPO, env: { ...process.env, DAWNGRAD_GPU_RUN: join(tmp, 'run') }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/run\.sh: no bundle nope\.mjs in this pack/);
    expect(existsSync(join(pack, 'nope.mjs'))).toBe(false);
  });
});
