// dawngrad merge: fold a PEFT LoRA adapter into its base model and write a complete Hugging Face model directory
// (config, sharded safetensors + index, tokenizer, generation config) that transformers and our loader both load.
import { existsSync, readdirSync, statSync } from 'node:fs';
import type { OutputDType } from '@dawngrad/lora';
import { CliError, parse, type Command } from './args.ts';

const USAGE = `usage: dawngrad merge --model DIR --adapter DIR --out DIR [--dtype auto|f32|bf16|f16] [--max-shard-size SIZE]

  --model DIR            base model directory (config.json + safetensors)
  --adapter DIR          PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)
  --out DIR              where to write the merged model; must not exist or be empty
  --dtype D              weights' dtype: auto (default: as the base stored them), f32, bf16 or f16
  --max-shard-size SIZE  largest shard, e.g. 5GB (default), 500MB, 2GiB`;

const DTYPES: Record<string, OutputDType> = { auto: 'auto', f32: 'F32', bf16: 'BF16', f16: 'F16' };
const UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30 };

/** "5GB" -> 5e9, "2GiB" -> 2·2³⁰, "1000" -> 1000 bytes (units as transformers' max_shard_size reads them). */
export function parseSize(flag: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? (m[2] || 'B').toUpperCase() : '';
  const bytes = m && unit in UNITS ? Math.floor(Number(m[1]) * UNITS[unit]!) : NaN;
  if (!(bytes > 0)) throw new CliError(`merge: --${flag} must be a positive size like 5GB, 500MB or 2GiB, got '${value}'`);
  return bytes;
}

function dirFlag(flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new CliError(`merge: --${flag} DIR is required`);
  return value;
}

export const merge: Command = {
  summary: 'merge a LoRA adapter into its base model and write an HF model directory',
  async run(argv) {
    const { values } = parse('merge', argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string' },
      'max-shard-size': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const model = dirFlag('model', values.model);
    const adapter = dirFlag('adapter', values.adapter);
    const out = dirFlag('out', values.out);
    const dtype = DTYPES[values.dtype ?? 'auto'];
    if (!dtype) throw new CliError(`merge: --dtype must be one of ${Object.keys(DTYPES).join(', ')}, got '${values.dtype}'`);
    const maxShardBytes = values['max-shard-size'] === undefined ? 5e9 : parseSize('max-shard-size', values['max-shard-size']);
    for (const [flag, dir] of [['model', model], ['adapter', adapter]] as const) {
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CliError(`merge: --${flag} ${dir} is not a directory`);
    }
    if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
      throw new CliError(`merge: --out ${out} exists and is not an empty directory; refusing to overwrite it`);
    }
    // loaded here, not at the top: the GPU stack is only needed once the flags have passed
    const { init, dispose } = await import('@dawngrad/tensor');
    const { mergeToDirectory } = await import('@dawngrad/lora');
    await init();
    try {
      const t0 = performance.now();
      const r = await mergeToDirectory(model, adapter, out, { dtype, maxShardBytes });
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      console.log(`merged ${r.merged.length} adapted layers into ${out} (${r.files.length} weight file${r.files.length > 1 ? 's' : ''}, ${secs} s)`);
      return 0;
    } finally {
      dispose();
    }
  },
};
