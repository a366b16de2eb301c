// The one-file CLI as a machine with Node but without the workspace gets it: `pnpm -s build:cli --out DIR` writes the
// bundle and the native packages it imports straight into DIR, a temp directory far from any node_modules, and plain
// `node dawngrad.mjs` there runs `info`, refuses a bad flag in one line, and trains 2 steps on the shared tiny model —
// writing its PNG figures, so resvg's native binary was found in the folder too.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, TINY_MODEL, TWEETS } from './shared.ts';

const TIMEOUT = 300_000;
let tmp: string;
let cli: string;

const env = () => {
  const e: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['DAWNGRAD_SHARED', 'NODE_PATH', 'NODE_OPTIONS']) delete e[k]; // nothing may point back at the workspace
  return e;
};
const run = (...args: string[]) =>
  spawnSync(process.execPath, [join(cli, 'dawngrad.mjs'), ...args], { cwd: tmp, env: env(), encoding: 'utf8', timeout: TIMEOUT });
const noise = (s: string) => s.split('\n').filter((l) => l.trim() && !/^Warning: /.test(l));

beforeAll(() => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'dawngrad-cli-copy-')));
  cli = join(tmp, 'cli');
  const b = spawnSync('pnpm', ['-s', 'build:cli', '--out', cli], { cwd: REPO, encoding: 'utf8', timeout: TIMEOUT });
  if (b.status !== 0) throw new Error(`pnpm -s build:cli --out ${cli} failed: ${b.stderr || b.stdout}`);
}, TIMEOUT);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the CLI built alone into a temp dir runs with plain node', () => {
  it('holds one bundle and the native packages it imports', () => {
    const build = JSON.parse(readFileSync(join(cli, 'BUILD.json'), 'utf8'));
    expect(build.bundles).toEqual(['dawngrad.mjs']);
    expect(build.nativePackages).toEqual(expect.arrayContaining(['webgpu', '@resvg/resvg-js']));
    expect(existsSync(join(cli, `node_modules/webgpu/dist/${process.platform}-${process.arch}/dawn.node`))).toBe(true);
    // the workspace's TypeScript is inside the bundle, not imported from outside it
    expect(readFileSync(join(cli, 'dawngrad.mjs'), 'utf8')).not.toMatch(/from ["'](@dawngrad\/|\.\.?\/)/);
  });

  it('info names the adapter and its class', () => {
    const r = run('info', '--json');
    expect(r.status, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.name).toMatch(/\S/);
    expect(['discrete', 'integrated', 'cpu', 'unknown']).toContain(info.adapterClass);
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(info.kernels.matmul).toMatch(/\S/);
  }, TIMEOUT);

  it('refuses a bad flag in one line with exit code 2', () => {
    const r = run('train', '--lr', '0');
    expect(r.status).toBe(2);
    expect(noise(r.stderr)).toEqual(["dawngrad: train: --lr must be > 0, got '0'"]);
  });

  it('trains 2 steps on the shared tiny model and writes the run directory, figures included', () => {
    const out = join(tmp, 'run');
    const r = run('train', '--model', TINY_MODEL, '--data', TWEETS, '--max-steps', '2', '--max-train', '16', '--max-eval', '4',
      '--eval-batch-size', '4', '--eval-mode', 'first-token', '--no-eval-before', '--checkpoint-every', '0', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/recipe auto → (quick|full): .*(software adapter|discrete GPU|not a discrete GPU)/);
    expect(r.stdout).toMatch(/test macro-F1 — → \d\.\d{4}/);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'loss' in m);
    expect(steps.map((m) => m.step)).toEqual([1, 2]);
    expect(readFileSync(join(out, 'loss.png')).subarray(0, 4)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    expect(existsSync(join(out, 'adapter-best/adapter_model.safetensors'))).toBe(true);
  }, TIMEOUT);
});
