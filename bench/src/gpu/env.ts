// Where the GPU benches find what they run beside themselves — the PyTorch peer, the model configs, the dawngrad CLI and
// a python with torch — both in the workspace (pnpm bench, through tsx) and in .gpu/bench.mjs, the bundle that
// scripts/gpu/pack.sh makes for a GPU machine that has neither pnpm nor the workspace's node_modules.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** This module's folder: bench/src/gpu, or the folder of the bundle it was bundled into. */
const HERE = dirname(fileURLToPath(import.meta.url));
/** In a bundle, dawngrad.mjs sits beside it (pack.sh, build-cli). */
const BUNDLED = existsSync(join(HERE, 'dawngrad.mjs'));

/** The repository root: the first folder above this module, or above the working directory, with pnpm-workspace.yaml. */
export function repoRoot(): string | null {
  for (const start of [HERE, process.cwd()]) {
    for (let d = start; ; d = dirname(d)) {
      if (existsSync(join(d, 'pnpm-workspace.yaml'))) return d;
      if (dirname(d) === d) break;
    }
  }
  return null;
}

function firstExisting(what: string, candidates: (string | null | undefined)[]): string {
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found) throw new Error(`gpu bench: no ${what} (looked at ${candidates.filter(Boolean).join(', ')})`);
  return found;
}

/** A peer script by file name: peers/ beside the bundle (pack.sh copies them there), or the repository's bench/peers. */
export function peerScript(name: string): string {
  const repo = repoRoot();
  return firstExisting(`peer script ${name}`, [join(HERE, 'peers', name), repo && join(repo, 'bench/peers', name)]);
}

export type ModelName = 'lite-oute-300m' | 'tiny';
const SHARED_MODEL: Record<ModelName, string> = { 'lite-oute-300m': 'models/lite-oute-1-300m-instruct', tiny: 'models/tweet-mistral-tiny' };

/** A model's config.json: under DAWNGRAD_SHARED, packed beside the bundle (<name>-config.json), or in ../shared. */
export function modelConfig(name: ModelName): string {
  const repo = repoRoot();
  const shared = process.env.DAWNGRAD_SHARED;
  return firstExisting(`config for ${name}`, [
    shared && join(shared, SHARED_MODEL[name], 'config.json'),
    join(HERE, `${name}-config.json`),
    repo && join(repo, '../shared', SHARED_MODEL[name], 'config.json'),
  ]);
}

/** A copy of a config with some fields changed (e.g. fewer layers for a smoke run), in a temp folder. */
export function configVariant(path: string, changes: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'dawngrad-gpu-bench-'));
  const out = join(dir, 'config.json');
  writeFileSync(out, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ...changes }, null, 2));
  return out;
}

/** argv that starts the dawngrad CLI: the bundle beside this one, or the sources through tsx. */
export function dawngradCommand(): string[] {
  if (BUNDLED) return [process.execPath, join(HERE, 'dawngrad.mjs')];
  const repo = repoRoot();
  if (!repo) throw new Error('gpu bench: neither a bundled dawngrad.mjs beside the bench nor the repository');
  const tsx = createRequire(join(repo, 'package.json')).resolve('tsx');
  return [process.execPath, '--import', pathToFileURL(tsx).href, resolve(repo, 'packages/train/src/cli/main.ts')];
}

let pythonFound: { python: string | null; why: string } | null = null;

/**
 * The python that runs the PyTorch peer: DAWNGRAD_PYTHON, else the first of python3 on PATH and /usr/bin/python3
 * (Debian's python3-torch lives there) that imports torch; null with the reason when none does.
 */
export function torchPython(): { python: string | null; why: string } {
  if (pythonFound) return pythonFound;
  const candidates = process.env.DAWNGRAD_PYTHON ? [process.env.DAWNGRAD_PYTHON] : ['python3', '/usr/bin/python3'];
  const tried: string[] = [];
  for (const p of candidates) {
    const r = spawnSync(p, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (!r.error && r.status === 0) return (pythonFound = { python: p, why: `${p}: torch ${r.stdout.trim()}` });
    tried.push(`${p}: ${r.error?.message ?? (r.stderr.trim().split('\n').at(-1) || `exit ${r.status}`)}`);
  }
  return (pythonFound = { python: null, why: `no python with torch (${tried.join('; ')})` });
}

/** The GPU's name and driver as nvidia-smi reports them, when it is there. */
export function nvidiaSmi(): { name: string; driver: string } | null {
  for (const smi of ['nvidia-smi', '/usr/local/nvidia/bin/nvidia-smi']) {
    const r = spawnSync(smi, ['--query-gpu=name,driver_version', '--format=csv,noheader'], { encoding: 'utf8', timeout: 20_000 });
    if (r.error || r.status !== 0) continue;
    const [name, driver] = r.stdout.trim().split('\n')[0]!.split(',').map((s) => s.trim());
    if (name) return { name, driver: driver ?? '' };
  }
  return null;
}
