// Parity with Hugging Face PEFT on shared/fixtures/hf-tiny: the PEFT-written adapter loaded onto the base model gives
// transformers' logits, loss and LoRA gradients; merging gives the same function; PEFT's merged logits after three
// AdamW steps are reproduced from the stored weights; `dawngrad merge` writes a directory our loader reads back.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { join } from 'node:path';
import { mkdtempSync, rmSync, readdirSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { Tensor } from '@dawngrad/tensor';
import { backward, noGrad } from '@dawngrad/autograd';
import { SafetensorsFile, loadModel, shiftedTargetsFull, causalLmLoss, setData, type MistralForCausalLM } from '@dawngrad/model';
import { loadAdapter, inject, type LoraModel } from '@dawngrad/lora';
import { merge, parseSize } from '../../packages/train/src/cli/merge.ts';
import { CliError } from '../../packages/train/src/cli/args.ts';
import { HF_TINY, REPO, maxAbs, relErr, fixtureBatch, torchReference } from '../shared.ts';

const ADAPTER = join(HF_TINY, 'adapter');
const { meta, dump, tensor } = torchReference();
let tmp: string;
let lora: LoraModel | null = null;
let batch: { inputIds: Tensor; attentionMask: Tensor };
let labels: Int32Array;
let B: number;
let T: number;

// after torchReference's beforeAll (the device up, the dump open); its afterAll closes them after ours
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-lora-parity-'));
  ({ batch, labels, B, T } = await fixtureBatch(dump()));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  lora?.dispose();
  lora = null;
});

const logitsOf = (m: { forward: MistralForCausalLM['forward'] }) => noGrad(() => m.forward(batch)).data.toArray();

describe('hf-tiny LoRA parity with PEFT', () => {
  it('logits, loss and every LoRA gradient match PEFT; the base gets no gradient', async () => {
    lora = await loadAdapter(ADAPTER, await loadModel(HF_TINY));
    expect(lora.namedParameters().map((p) => p.name)).toEqual(meta['lora.names']);
    const logits = lora.forward(batch);
    const loss = causalLmLoss(logits, shiftedTargetsFull(labels, B, T));
    backward(loss);
    expect(maxAbs(await logits.data.toArray(), await tensor('lora.logits'))).toBeLessThanOrEqual(1e-4);
    const l = await loss.data.item();
    expect(Math.abs(l - meta['lora.loss']) / meta['lora.loss']).toBeLessThanOrEqual(1e-5);
    for (const { name, param } of lora.namedParameters()) {
      expect(param.grad, `${name} has a gradient`).toBeTruthy();
      expect(relErr(await param.grad!.toArray(), await tensor(`lora.grad.${name}`)), `gradient of ${name}`).toBeLessThanOrEqual(1e-3);
    }
    for (const { name, param } of lora.base.namedParameters()) expect(param.grad, `${name} is frozen`).toBeNull();
  });

  it('a fresh adapter (B = 0) leaves the base logits unchanged', async () => {
    lora = inject(await loadModel(HF_TINY), { r: 8, lora_alpha: 16, target_modules: 'all-linear', seed: 1 });
    expect(maxAbs(await logitsOf(lora), await tensor('base.logits'))).toBeLessThanOrEqual(1e-4);
  });

  it('merged logits equal adapter logits; unmerge restores the base weights', async () => {
    lora = await loadAdapter(ADAPTER, await loadModel(HF_TINY));
    const adapted = await logitsOf(lora);
    lora.merge();
    expect(maxAbs(await logitsOf(lora), adapted)).toBeLessThanOrEqual(1e-4);
    lora.unmerge();
    const base = await SafetensorsFile.open(join(HF_TINY, 'model.safetensors'));
    for (const l of lora.layers) {
      const w = (await base.readTensor(`${l.path}.weight`)).data;
      expect(maxAbs(await l.linear.weight.data.toArray(), w), l.path).toBeLessThanOrEqual(1e-6);
    }
    await base.close();
    expect(maxAbs(await logitsOf(lora), adapted)).toBeLessThanOrEqual(1e-5);
  });

  it("reproduces PEFT's merge_and_unload logits from the weights after 3 AdamW steps", async () => {
    lora = await loadAdapter(ADAPTER, await loadModel(HF_TINY));
    for (const { name, param } of lora.namedParameters()) {
      setData(param, Tensor.fromArray(await tensor(`lora.after_step2.${name}`), param.shape));
    }
    lora.eval().merge();
    expect(maxAbs(await logitsOf(lora), await tensor('merged.logits'))).toBeLessThanOrEqual(1e-4);
  });
});

describe('dawngrad merge', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'packages/train/src/cli/main.ts'), 'merge', ...args], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 120_000,
    });

  it('writes a sharded HF directory whose logits are the adapter model logits', async () => {
    const out = join(tmp, 'merged');
    const r = cli('--model', HF_TINY, '--adapter', ADAPTER, '--out', out, '--max-shard-size', '1MB');
    expect(r.status, r.stderr).toBe(0); // stderr may carry Dawn's adapter warnings
    expect(r.stdout).toMatch(/merged 4 adapted layers/);
    const files = readdirSync(out);
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) expect(files).toContain(f);
    const merged = await loadModel(out);
    try {
      expect(maxAbs(await logitsOf(merged), await tensor('lora.logits'))).toBeLessThanOrEqual(1e-4);
    } finally {
      merged.dispose();
    }
  });

  it('an unknown flag exits with code 2 and one line', () => {
    const r = cli('--model', HF_TINY, '--adapter', ADAPTER, '--out', 'x', '--bogus');
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/Unknown option '--bogus'/);
  });

  // the rest of the flag checks in-process (a subprocess costs seconds): a CliError is what main() turns into exit 2
  it.each([
    [['--model', HF_TINY, '--adapter', ADAPTER], /--out DIR is required/],
    [['--model', HF_TINY, '--adapter', ADAPTER, '--out', 'x', '--dtype', 'f8'], /--dtype must be one of auto, f32, bf16, f16/],
    [['--model', HF_TINY, '--adapter', ADAPTER, '--out', 'x', '--max-shard-size', '5 parsecs'], /--max-shard-size must be a positive size/],
    [['--model', HF_TINY, '--adapter', ADAPTER, '--out', 'x', '--max-shard-size', '0MB'], /--max-shard-size must be a positive size/],
    [['--model', join(HF_TINY, 'nope'), '--adapter', ADAPTER, '--out', 'x'], /--model .* is not a directory/],
    [['--model', HF_TINY, '--adapter', ADAPTER, '--out', 'x', 'stray'], /Unexpected argument 'stray'/],
  ])('refuses %j as a usage error', async (args, msg) => {
    const err = await merge.run(args as string[]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(msg);
  });

  it('parses shard sizes as transformers does', () => {
    expect(parseSize('s', '5GB')).toBe(5e9);
    expect(parseSize('s', '2GiB')).toBe(2 * 2 ** 30);
    expect(parseSize('s', '500mb')).toBe(5e8);
    expect(parseSize('s', '1000')).toBe(1000);
  });

  it('refuses an existing non-empty --out and leaves it alone', async () => {
    const out = join(tmp, 'occupied');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const err = await merge.run(['--model', HF_TINY, '--adapter', ADAPTER, '--out', out]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(/exists and is not an empty directory/);
    expect(readdirSync(out)).toEqual(['keep.txt']);
    expect(existsSync(join(out, 'config.json'))).toBe(false);
  });
});
