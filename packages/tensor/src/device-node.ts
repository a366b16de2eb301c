// The Node side of the device (package.json "imports" maps `#platform` here outside a browser build): Dawn from the
// npm `webgpu` package, the Vulkan driver it should see, Dawn's flags, and Node's file-system modules for the layers
// above (model and lora read and write files through `nodeApi`, so that none of them imports `node:` itself).
//
// Vulkan drivers: the loader finds ICD files (JSON naming a driver library) in standard folders, or exactly the ones
// VK_DRIVER_FILES lists. An NVIDIA driver installed under its own prefix (/usr/local/nvidia, a container's mount) puts
// its nvidia_icd.json where the loader never looks, and Dawn then sees only lavapipe. So when neither VK_DRIVER_FILES
// nor VK_ICD_FILENAMES is set and an nvidia_icd.json exists, we set VK_DRIVER_FILES to it plus every ICD of the
// standard folders (the loader's own choice stays available as a fallback) before Dawn creates its instance.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as os from 'node:os';
import * as crypto from 'node:crypto';
import { create, globals } from 'webgpu';
import type { NodeApi, Platform } from './device.ts';

/** What discovery looks at, so tests can hand in a fake machine. */
export interface MachineProbe {
  env: Record<string, string | undefined>;
  exists(p: string): boolean;
  /** entries of a folder, [] when it is missing */
  list(dir: string): string[];
}

export const realMachine = (): MachineProbe => ({
  env: process.env,
  exists: (p) => fs.existsSync(p),
  list: (d) => {
    try {
      return fs.readdirSync(d);
    } catch {
      return [];
    }
  },
});

/** Folders the Vulkan loader searches by itself on Linux (user folders aside). */
export const STANDARD_ICD_FOLDERS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
/** Where an NVIDIA ICD file sits: the loader's folders, then the container toolkit's prefix. */
export const NVIDIA_ICD_FILES = [
  '/usr/share/vulkan/icd.d/nvidia_icd.json',
  '/etc/vulkan/icd.d/nvidia_icd.json',
  '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json',
];
export const NVIDIA_EGL_VENDOR_FILE = '/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json';

/** The driver's own install prefixes: where nvidia-smi on PATH lives (<prefix>/bin) and NVIDIA library folders (<prefix>/lib64). */
export function driverPrefixes(m: MachineProbe): string[] {
  const out: string[] = [];
  const add = (p: string) => {
    if (p && p !== '/' && !out.includes(p)) out.push(p);
  };
  for (const dir of (m.env.PATH ?? '').split(':').filter(Boolean)) {
    if (m.exists(path.join(dir, 'nvidia-smi'))) add(path.dirname(path.resolve(dir)));
  }
  for (const dir of (m.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    if (/nvidia/i.test(dir)) add(path.dirname(path.resolve(dir)));
  }
  return out;
}

/** The NVIDIA Vulkan ICD file, or null: the known files first, then `<prefix>/share/…` and `<prefix>/*\/share/…`. */
export function findNvidiaIcd(m: MachineProbe): string | null {
  const tail = 'share/vulkan/icd.d/nvidia_icd.json';
  const candidates = [...NVIDIA_ICD_FILES];
  for (const prefix of driverPrefixes(m)) {
    candidates.push(path.join(prefix, tail));
    for (const sub of m.list(prefix)) candidates.push(path.join(prefix, sub, tail));
  }
  return candidates.find((f) => m.exists(f)) ?? null;
}

/** Whether an NVIDIA GPU looks present: nvidia-smi on PATH, /dev/nvidia0, or an NVIDIA ICD file. */
export function nvidiaVisible(m: MachineProbe): boolean {
  if (m.exists('/dev/nvidia0')) return true;
  if ((m.env.PATH ?? '').split(':').some((d) => d && m.exists(path.join(d, 'nvidia-smi')))) return true;
  return findNvidiaIcd(m) !== null;
}

/**
 * The environment variables to add before Dawn starts so the Vulkan loader finds an NVIDIA driver: VK_DRIVER_FILES
 * (the NVIDIA ICD, then the standard folders' ICDs) when no driver list is set, and the NVIDIA EGL vendor file when
 * present and unset. Empty when there is nothing to do.
 */
export function vulkanEnv(m: MachineProbe): Record<string, string> {
  const add: Record<string, string> = {};
  if (!m.env.VK_DRIVER_FILES && !m.env.VK_ICD_FILENAMES) {
    const icd = findNvidiaIcd(m);
    if (icd) {
      const others = STANDARD_ICD_FOLDERS.flatMap((d) => m.list(d).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(d, f)));
      add.VK_DRIVER_FILES = [icd, ...others.filter((f) => path.basename(f) !== 'nvidia_icd.json')].join(':');
    }
  }
  if (!m.env.__EGL_VENDOR_LIBRARY_FILENAMES && m.exists(NVIDIA_EGL_VENDOR_FILE)) add.__EGL_VENDOR_LIBRARY_FILENAMES = NVIDIA_EGL_VENDOR_FILE;
  return add;
}

/** Dawn's create() flags: DAWNGRAD_BACKEND / DAWNGRAD_ADAPTER, the toggles, and full-resolution timestamps. */
export function dawnFlags(env: Record<string, string | undefined>, toggles: readonly string[]): string[] {
  // full-resolution GPU timestamps for the profiler (Dawn rounds them to ~65 µs by default, against timing attacks)
  const flags: string[] = ['disable-dawn-features=timestamp_quantization'];
  if (toggles.length) flags.push(`enable-dawn-features=${toggles.join(',')}`);
  if (env.DAWNGRAD_BACKEND) flags.push(`backend=${env.DAWNGRAD_BACKEND}`);
  if (env.DAWNGRAD_ADAPTER) flags.push(`adapter=${env.DAWNGRAD_ADAPTER}`);
  return flags;
}

export const platform: Platform = {
  kind: 'node',
  gpu(toggles) {
    const m = realMachine();
    Object.assign(process.env, vulkanEnv(m));
    process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Dawn's Vulkan backend warns without one
    Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, … as in a browser
    return create(dawnFlags(process.env, toggles));
  },
  env: (name) => process.env[name],
  nvidiaVisible: () => nvidiaVisible(realMachine()),
  noAdapterHint:
    'no WebGPU adapter found. On Debian bookworm install Mesa lavapipe from backports: ' +
    'add the bookworm-backports suite, then `apt-get install -t bookworm-backports libvulkan1 mesa-vulkan-drivers` ' +
    '(or run scripts/bootstrap.sh as root)',
};

export const nodeApi: NodeApi = { fs, fsp, path, os, crypto };
