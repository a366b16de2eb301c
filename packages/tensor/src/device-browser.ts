// The browser side of the device (package.json "imports" maps `#platform` here under a bundler's "browser"
// condition): the GPU is navigator.gpu, there are no Dawn toggles or environment variables, and Node's modules are
// stand-ins whose every function throws (model and lora load from URLs or picked files in a browser instead).
import type { NodeApi, Platform } from './device.ts';

const nav = () => (globalThis as { navigator?: { gpu?: GPU } }).navigator;

export const platform: Platform = {
  kind: 'browser',
  gpu() {
    const gpu = nav()?.gpu;
    if (!gpu) throw new Error(platform.noAdapterHint);
    return gpu;
  },
  env: () => undefined,
  nvidiaVisible: () => false,
  noAdapterHint:
    'no WebGPU in this browser: use a recent Chrome or Edge (WebGPU is on by default on Windows, macOS and ChromeOS; ' +
    'on Linux start Chrome with --enable-unsafe-webgpu) or Firefox/Safari with WebGPU enabled',
};

/** A module whose every property is a function that throws: `nodeApi.fs.readFileSync(...)` fails with a clear line. */
function unavailable(module: string): never {
  return new Proxy({}, {
    get: (_t, name) => () => {
      throw new Error(
        `${module}.${String(name)} is not available in a browser: load models and adapters from a URL or picked files ` +
          '(urlSource, filesSource from @dawngrad/model)',
      );
    },
  }) as never;
}

export const nodeApi: NodeApi = {
  fs: unavailable('node:fs'),
  fsp: unavailable('node:fs/promises'),
  path: unavailable('node:path'),
  os: unavailable('node:os'),
  crypto: unavailable('node:crypto'),
};
