// What a figure was measured on: CPU model and cores, load at the time, Node, and the WebGPU adapter.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { rt } from '@dawngrad/tensor';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  /** 1-minute load average when the run started and ended: other processes share the cores and skew timings */
  loadavg: { start: number; end?: number };
  node: string;
  platform: string;
  adapter: { vendor: string; architecture: string; device: string; description: string; isSoftware: boolean; adapterClass: string; subgroups: string };
}

function cpuModel(): string {
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Needs `await init()` first (the adapter is ours). */
export function machine(): Machine {
  const { info, adapter, device, adapterClass } = rt().ctx;
  const ai = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: { start: Number(os.loadavg()[0]!.toFixed(2)) },
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isSoftware: info.isSoftware,
      adapterClass,
      subgroups: device.features.has('subgroups') ? `${ai.subgroupMinSize}-${ai.subgroupMaxSize}` : 'no',
    },
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ${m.adapter.description || m.adapter.device} (software: ${m.adapter.isSoftware}, subgroups ${m.adapter.subgroups}); node ${m.node}; load ${m.loadavg.start}${m.loadavg.end !== undefined ? `→${m.loadavg.end}` : ''}`;
}
