// dawngrad info: the adapter Dawn picked, its limits and features, and a matmul smoke run checked on the CPU.
import { parse, type Command } from './args.ts';

const LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
] as const;

export const info: Command = {
  summary: 'print the WebGPU adapter, its limits and features',
  async run(argv) {
    const { values } = parse('info', argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
    if (values.help) {
      console.log('usage: dawngrad info [--json]');
      return 0;
    }
    const { init, dispose } = await import('@dawngrad/tensor'); // after the flags: a usage error starts no GPU
    const { ctx } = await init();
    try {
      const limits = Object.fromEntries(LIMITS.map((k) => [k, ctx.limits[k]]));
      if (values.json) {
        console.log(JSON.stringify({ adapter: ctx.info, limits, features: ctx.features }, null, 2));
        return 0;
      }
      const i = ctx.info;
      console.log(`adapter   ${[i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ')}`);
      console.log(`backend   ${i.backend || 'unknown'}${i.isSoftware ? ' (software: runs on the CPU)' : ''}`);
      for (const [k, v] of Object.entries(limits)) console.log(`${k.padEnd(34)} ${v}`);
      console.log(`features  ${ctx.features.join(', ')}`);
      return 0;
    } finally {
      dispose();
    }
  },
};
