// The adapter facts behind `dawngrad info` and the `auto` recipe, with fake adapters (CI has no GPU): the adapter's
// name, the features the toggles unlock, and the recipe `auto` picks — an explicit --recipe always wins.
import { describe, it, expect, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adapterFacts, toggledFeatures, formatSubgroupMatrixConfigs, gpuMayBeVisible, GPU_TOGGLES } from '../src/gpu-facts.ts';
import { autoRecipe, resolveRecipe, resolveOptions, RECIPES, AUTO_RECIPE } from '../src/options.ts';

const H200 = { vendor: 'nvidia', architecture: 'hopper', device: 'nvidia-h200', description: 'NVIDIA: 580.159 580.159.0.0', isSoftware: false };
const LAVAPIPE = { vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)', isSoftware: true };

describe('adapter facts', () => {
  it("name the adapter by vendor and description and carry the device's class and subgroup-matrix configs", () => {
    const sm = [{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }];
    const f = adapterFacts({ info: { ...H200, backend: 'vulkan' }, adapterClass: 'discrete', subgroupMatrixConfigs: sm });
    expect(f).toEqual({ name: 'nvidia / NVIDIA: 580.159 580.159.0.0', adapterClass: 'discrete', subgroupMatrixConfigs: sm });
    expect(formatSubgroupMatrixConfigs(f.subgroupMatrixConfigs)).toEqual(['f16→f32 16×16×16']);
    const soft = adapterFacts({ info: { ...LAVAPIPE, backend: '' }, adapterClass: 'cpu', subgroupMatrixConfigs: [] });
    expect(soft.name).toBe('mesa / llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)');
    expect(adapterFacts({ info: { vendor: '', architecture: '', device: '', description: '', backend: '', isSoftware: false }, adapterClass: 'unknown', subgroupMatrixConfigs: [] }).name)
      .toBe('unknown adapter');
  });
});

describe('the features the GPU toggles unlock', () => {
  it('says which toggles to add when a feature is missing, and when the toggles cannot help', () => {
    const none = toggledFeatures(['timestamp-query'], []);
    expect(none.map((u) => u.feature)).toEqual(['shader-f16', 'chromium-experimental-subgroup-matrix']);
    for (const u of none) expect(u).toMatchObject({ available: false, howTo: `start with DAWNGRAD_DAWN_TOGGLES=${GPU_TOGGLES}` });
    const some = toggledFeatures(['shader-f16'], ['allow_unsafe_apis']);
    expect(some[0]).toEqual({ feature: 'shader-f16', available: true, howTo: null });
    expect(some[1]!.howTo).toBe('start with DAWNGRAD_DAWN_TOGGLES=allow_unsafe_apis,vulkan_enable_f16_on_nvidia');
    expect(toggledFeatures([], GPU_TOGGLES.split(','))[1]!.howTo).toMatch(/not offered by this adapter/);
  });
});

describe('whether a GPU may be visible (auto decides without Dawn when not)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dawngrad-gpu-facts-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const root = (name: string, devFiles: string[]) => {
    for (const f of devFiles) {
      mkdirSync(join(tmp, name, 'dev', f, '..'), { recursive: true });
      writeFileSync(join(tmp, name, 'dev', f), '');
    }
    mkdirSync(join(tmp, name), { recursive: true });
    return join(tmp, name);
  };

  it('no NVIDIA trace and no DRM node on Linux: software only; a render or card node, an NVIDIA trace, or another OS: maybe', () => {
    const none = () => false;
    expect(gpuMayBeVisible(none, 'linux', root('bare', ['null', 'dri/by-path']))).toBe(false);
    expect(gpuMayBeVisible(none, 'linux', root('render', ['dri/renderD128']))).toBe(true);
    expect(gpuMayBeVisible(none, 'linux', root('card', ['dri/card0']))).toBe(true);
    expect(gpuMayBeVisible(() => true, 'linux', root('nvidia', []))).toBe(true);
    expect(gpuMayBeVisible(none, 'darwin', root('mac', []))).toBe(true);
  });
});

describe('the auto recipe', () => {
  const gpu = { name: 'nvidia / H200', adapterClass: 'discrete' as const };
  const cpu = { name: 'mesa / llvmpipe', adapterClass: 'cpu' as const };

  it('picks full on a discrete GPU and quick on a software or other adapter, and says why', () => {
    expect(autoRecipe(gpu)).toMatchObject({ recipe: 'full', reason: expect.stringMatching(/discrete GPU/) });
    expect(autoRecipe(cpu)).toMatchObject({ recipe: 'quick', reason: expect.stringMatching(/software adapter/) });
    expect(autoRecipe({ name: 'intel', adapterClass: 'integrated' }).recipe).toBe('quick');
    expect(autoRecipe({ name: 'amd', adapterClass: 'unknown' }).recipe).toBe('quick');
    expect(resolveRecipe(undefined, gpu).recipe).toBe('full');
    expect(resolveRecipe(AUTO_RECIPE, cpu).recipe).toBe('quick');
  });

  it('an explicit recipe wins on every adapter', () => {
    expect(resolveRecipe('quick', gpu)).toEqual({ recipe: 'quick', reason: null });
    expect(resolveRecipe('full', cpu)).toEqual({ recipe: 'full', reason: null });
    expect(resolveRecipe('seed', gpu)).toEqual({ recipe: 'seed', reason: null });
  });

  it("resolveOptions refuses 'auto' unresolved; auto is no recipe of its own and picks only named ones", () => {
    expect(() => resolveOptions({ recipe: 'auto' })).toThrow(/recipe 'auto' depends on the adapter/);
    expect(Object.keys(RECIPES)).not.toContain(AUTO_RECIPE);
    for (const adapterClass of ['discrete', 'integrated', 'cpu', 'unknown'] as const) {
      expect(Object.keys(RECIPES)).toContain(autoRecipe({ name: 'x', adapterClass }).recipe);
    }
  });
});
