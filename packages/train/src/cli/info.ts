// dawngrad info: the adapter Dawn picked and its class, a warning with the fix when that is a software adapter while an
// NVIDIA GPU is visible, its limits and features, the features Dawn's toggles unlock, the kernel variants the ops chose,
// and the recipe `auto` picks here. --json carries all of it.
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
  summary: 'print the WebGPU adapter, its class, limits, features and kernel variants',
  async run(argv) {
    const { values } = parse('info', argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
    if (values.help) {
      console.log('usage: dawngrad info [--json]');
      return 0;
    }
    // after the flags: a usage error starts no GPU
    const { init, dispose, nvidiaGpuVisible } = await import('@dawngrad/tensor');
    const g = await import('../gpu-facts.ts');
    const { autoRecipe } = await import('../options.ts');
    const { ctx } = await init();
    try {
      const facts = g.adapterFacts(ctx);
      const unlocks = g.toggledFeatures(ctx.features, ctx.toggles);
      const kernels = await g.kernelVariants();
      const recipe = autoRecipe(facts);
      const limits = Object.fromEntries(LIMITS.map((k) => [k, ctx.limits[k]]));
      if (values.json) {
        console.log(JSON.stringify({
          adapter: ctx.info, name: facts.name, adapterClass: facts.adapterClass, nvidiaVisible: nvidiaGpuVisible(), warning: ctx.warning,
          limits, features: ctx.features,
          toggles: { env: 'DAWNGRAD_DAWN_TOGGLES', value: ctx.toggles, gpuToggles: g.GPU_TOGGLES, unlocks },
          subgroupMatrixConfigs: facts.subgroupMatrixConfigs, kernels, autoRecipe: recipe,
        }, null, 2));
        return 0;
      }
      const i = ctx.info;
      const row = (k: string, v: string) => console.log(`${k.padEnd(40)} ${v}`);
      row('adapter', [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / '));
      row('class', `${facts.adapterClass}${i.isSoftware ? ' (software: runs on the CPU)' : ''}`);
      row('backend', i.backend || 'unknown');
      if (ctx.warning) console.error(`dawngrad info: warning: ${ctx.warning}`);
      for (const [k, v] of Object.entries(limits)) row(k, String(v));
      row('features', ctx.features.join(', '));
      row('DAWNGRAD_DAWN_TOGGLES', ctx.toggles.length ? ctx.toggles.join(',') : `unset (GPU features: ${g.GPU_TOGGLES})`);
      for (const u of unlocks) row(`  ${u.feature}`, u.available ? 'yes' : `no: ${u.howTo}`);
      const configs = g.formatSubgroupMatrixConfigs(facts.subgroupMatrixConfigs);
      if (configs.length) row('  subgroupMatrixConfigs', configs.join(', '));
      row('kernels', Object.entries(kernels).map(([op, v]) => `${op}: ${v}`).join(', '));
      row('recipe auto', `${recipe.recipe} (${recipe.reason})`);
      return 0;
    } finally {
      dispose();
    }
  },
};
