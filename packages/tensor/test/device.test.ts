// Device acquisition without a GPU: the NVIDIA ICD discovery, Dawn flags and toggles, adapter classification and
// preference, each on a fake machine or fake adapters (CI has no GPU; the real path runs on lavapipe in every other test).
import { describe, it, expect } from 'vitest';
import { parseToggles, dawnToggles, setDawnToggles, classifyAdapter, pickAdapter, wantedFeatures } from '../src/device.ts';
import { findNvidiaIcd, vulkanEnv, nvidiaVisible, dawnFlags, driverPrefixes, type MachineProbe } from '../src/device-node.ts';

/** A machine made of a file list: folders are listed from the files under them. */
function machine(files: string[], env: Record<string, string> = {}): MachineProbe {
  const set = new Set(files);
  return {
    env,
    exists: (p) => set.has(p) || files.some((f) => f.startsWith(`${p}/`)),
    list: (d) => [...new Set(files.filter((f) => f.startsWith(`${d}/`)).map((f) => f.slice(d.length + 1).split('/')[0]!))],
  };
}

const adapter = (info: Record<string, unknown>) => ({ info: info as unknown as GPUAdapterInfo }) as GPUAdapter;
const LAVAPIPE = adapter({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: 'llvmpipe: Mesa 25.0.7', isFallbackAdapter: true });
const SWIFTSHADER = adapter({ vendor: 'google', architecture: 'swiftshader', device: '', description: '' });
const H200 = adapter({ vendor: 'nvidia', architecture: 'hopper', device: 'nvidia-h200', description: 'NVIDIA H200' });
const IRIS = adapter({ vendor: 'intel', architecture: 'gen-12lp', device: '', description: 'Intel(R) Iris(R) Xe Graphics' });

describe('NVIDIA Vulkan ICD discovery', () => {
  it('finds the ICD in a known folder and lists it first in VK_DRIVER_FILES, before the standard ICDs', () => {
    const m = machine(['/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json', '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json']);
    expect(findNvidiaIcd(m)).toBe('/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json');
    expect(vulkanEnv(m)).toEqual({
      VK_DRIVER_FILES: '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json:/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
    });
  });

  it("finds it under the driver's own prefix (nvidia-smi on PATH, an NVIDIA library folder), one level down too", () => {
    const m = machine(['/opt/drv/bin/nvidia-smi', '/opt/drv/580/share/vulkan/icd.d/nvidia_icd.json'], { PATH: '/usr/bin:/opt/drv/bin' });
    expect(driverPrefixes(m)).toEqual(['/opt/drv']);
    expect(findNvidiaIcd(m)).toBe('/opt/drv/580/share/vulkan/icd.d/nvidia_icd.json');
    const lib = machine(['/srv/nvidia/share/vulkan/icd.d/nvidia_icd.json'], { LD_LIBRARY_PATH: '/usr/lib:/srv/nvidia/lib64' });
    expect(driverPrefixes(lib)).toEqual(['/srv/nvidia']);
    expect(findNvidiaIcd(lib)).toBe('/srv/nvidia/share/vulkan/icd.d/nvidia_icd.json');
    expect(findNvidiaIcd(machine(['/srv/nvidia/share/vulkan/icd.d/nvidia_icd.json']))).toBeNull(); // no prefix points there
  });

  it('leaves a driver list the user set alone, and does nothing without an NVIDIA ICD', () => {
    const icd = ['/etc/vulkan/icd.d/nvidia_icd.json'];
    expect(vulkanEnv(machine(icd, { VK_DRIVER_FILES: '/x.json' }))).toEqual({});
    expect(vulkanEnv(machine(icd, { VK_ICD_FILENAMES: '/x.json' }))).toEqual({});
    expect(vulkanEnv(machine(['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json']))).toEqual({});
    expect(vulkanEnv(machine(icd))).toEqual({ VK_DRIVER_FILES: '/etc/vulkan/icd.d/nvidia_icd.json' });
  });

  it("sets NVIDIA's EGL vendor file when it exists and the variable is unset", () => {
    const egl = '/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json';
    expect(vulkanEnv(machine([egl]))).toEqual({ __EGL_VENDOR_LIBRARY_FILENAMES: egl });
    expect(vulkanEnv(machine([egl], { __EGL_VENDOR_LIBRARY_FILENAMES: '/mine.json' }))).toEqual({});
  });

  it('sees an NVIDIA GPU by its device node, nvidia-smi on PATH or an ICD file, and not otherwise', () => {
    expect(nvidiaVisible(machine(['/dev/nvidia0']))).toBe(true);
    expect(nvidiaVisible(machine(['/usr/bin/nvidia-smi'], { PATH: '/usr/bin' }))).toBe(true);
    expect(nvidiaVisible(machine(['/usr/share/vulkan/icd.d/nvidia_icd.json']))).toBe(true);
    expect(nvidiaVisible(machine(['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/bin/node'], { PATH: '/usr/bin' }))).toBe(false);
  });
});

describe('Dawn flags and toggles', () => {
  it('parses a comma list, trimming, dropping empties and repeats', () => {
    expect(parseToggles(' allow_unsafe_apis,vulkan_enable_f16_on_nvidia,,allow_unsafe_apis ')).toEqual(['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia']);
    expect(parseToggles(undefined)).toEqual([]);
    expect(() => parseToggles('allow_unsafe_apis;rm -rf')).toThrow(/DAWNGRAD_DAWN_TOGGLES: "allow_unsafe_apis;rm -rf" is not a Dawn toggle name/);
  });

  it('passes toggles, backend and adapter choice to Dawn', () => {
    expect(dawnFlags({ DAWNGRAD_ADAPTER: 'nvidia' }, ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'])).toEqual([
      'disable-dawn-features=timestamp_quantization',
      'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia',
      'adapter=nvidia',
    ]);
    expect(dawnFlags({}, [])).toEqual(['disable-dawn-features=timestamp_quantization']);
  });

  it('setDawnToggles overrides the environment variable until reset with null', () => {
    const env = (k: string) => (k === 'DAWNGRAD_DAWN_TOGGLES' ? 'allow_unsafe_apis' : undefined);
    expect(dawnToggles(env)).toEqual(['allow_unsafe_apis']);
    setDawnToggles(['vulkan_enable_f16_on_nvidia']);
    try {
      expect(dawnToggles(env)).toEqual(['vulkan_enable_f16_on_nvidia']);
    } finally {
      setDawnToggles(null);
    }
    expect(dawnToggles(env)).toEqual(['allow_unsafe_apis']);
    expect(() => setDawnToggles(['Bad Name'])).toThrow(/setDawnToggles: "Bad Name" is not a Dawn toggle name/);
  });
});

describe('adapter class and preference', () => {
  it('classifies software adapters as cpu, NVIDIA as discrete, Intel Iris as integrated', () => {
    expect(classifyAdapter(LAVAPIPE)).toBe('cpu');
    expect(classifyAdapter(SWIFTSHADER)).toBe('cpu');
    expect(classifyAdapter(H200)).toBe('discrete');
    expect(classifyAdapter(IRIS)).toBe('integrated');
    expect(classifyAdapter(adapter({ vendor: 'someone', device: 'x' }))).toBe('unknown');
  });

  const gpuOf = (byPreference: Record<string, GPUAdapter | null>) => ({
    requestAdapter: async (o?: GPURequestAdapterOptions) => byPreference[o?.powerPreference ?? 'high-performance'] ?? null,
  });

  it('keeps a GPU the high-performance request returned', async () => {
    const r = await pickAdapter(gpuOf({ 'high-performance': H200, 'low-power': LAVAPIPE }), () => true);
    expect(r).toEqual({ adapter: H200, warning: null });
  });

  it('prefers a real GPU from the low-power request over a software adapter, and says so', async () => {
    const r = await pickAdapter(gpuOf({ 'high-performance': LAVAPIPE, 'low-power': IRIS }), () => false);
    expect(r.adapter).toBe(IRIS);
    expect(r.warning).toMatch(/returned the software adapter llvmpipe: Mesa 25.0.7; using Intel\(R\) Iris\(R\) Xe Graphics/);
  });

  it('warns, with the fix, when only a software adapter is found while a GPU is visible', async () => {
    const seen = await pickAdapter(gpuOf({ 'high-performance': LAVAPIPE, 'low-power': LAVAPIPE }), () => true);
    expect(seen.adapter).toBe(LAVAPIPE);
    expect(seen.warning).toMatch(/^software adapter llvmpipe: Mesa 25.0.7 while a GPU is visible: .*VK_DRIVER_FILES/);
    const none = await pickAdapter(gpuOf({ 'high-performance': LAVAPIPE, 'low-power': LAVAPIPE }), () => false);
    expect(none.warning).toBeNull();
  });

  it('requests shader-f16, timestamps, subgroups and subgroup matrices when offered, nothing else', () => {
    expect(wantedFeatures(new Set(['shader-f16', 'chromium-experimental-subgroup-matrix', 'texture-compression-bc']))).toEqual([
      'shader-f16',
      'chromium-experimental-subgroup-matrix',
    ]);
    expect(wantedFeatures(new Set(['subgroups', 'timestamp-query']))).toEqual(['timestamp-query', 'subgroups']);
  });
});
