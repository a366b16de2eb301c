// The forward and generate commands end to end, through the real CLI in a subprocess: `dawngrad forward` on the hf-tiny
// batch writes transformers' logits, loss and gradients (base and LoRA, the latter through chunked logits);
// `dawngrad generate --chat` prints text with the shared tiny model. Flag errors are checked in-process (a subprocess
// costs seconds): a CliError is what main() turns into exit code 2.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { SafetensorsFile } from '@dawngrad/model';
import { forward } from '../packages/train/src/cli/forward.ts';
import { generateCmd } from '../packages/train/src/cli/generate.ts';
import { CliError } from '../packages/train/src/cli/args.ts';
import { HF_TINY, TINY_MODEL, REPO, maxAbs, relErr } from './shared.ts';

const BATCH = join(HF_TINY, 'reference.safetensors');
const ADAPTER = join(HF_TINY, 'adapter');
const meta = JSON.parse(readFileSync(join(HF_TINY, 'reference.json'), 'utf8'));
let ref: SafetensorsFile;
let tmp: string;

beforeAll(async () => {
  ref = await SafetensorsFile.open(BATCH);
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-cli-'));
});
afterAll(async () => {
  await ref?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'packages/train/src/cli/main.ts'), ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });

/** Every tensor of a written file, by name. */
async function readAll(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const n of f.names()) {
      const t = await f.readTensor(n);
      expect(t.dtype, n).toBe('F32');
      out.set(n, { shape: t.shape, data: t.data as Float32Array });
    }
    return out;
  } finally {
    await f.close();
  }
}

const refData = async (name: string) => (await ref.readTensor(name)).data as Float32Array;

describe('dawngrad forward', () => {
  it("writes transformers' logits, loss and every base gradient under HF names", async () => {
    const out = join(tmp, 'base.safetensors');
    const r = cli('forward', '--model', HF_TINY, '--batch', BATCH, '--out', out, '--grads', 'base');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^forward: \[4, 107\] loss [\d.]+, \d+ gradients -> /);
    const got = await readAll(out);
    expect(got.get('logits')!.shape).toEqual([4, 107, 1000]);
    expect(maxAbs(got.get('logits')!.data, await refData('base.logits'))).toBeLessThanOrEqual(1e-4);
    expect(got.get('loss')!.shape).toEqual([1]);
    expect(Math.abs(got.get('loss')!.data[0]! - meta['base.loss']) / meta['base.loss']).toBeLessThanOrEqual(1e-5);
    const want = ref.names().filter((n) => n.startsWith('base.grad.'));
    expect([...got.keys()].filter((n) => n.startsWith('grad.')).sort()).toEqual(want.map((n) => n.slice('base.'.length)).sort());
    for (const n of want) expect(relErr(got.get(n.slice('base.'.length))!.data, await refData(n)), n).toBeLessThanOrEqual(1e-3);
  });

  it('with --adapter and --grads lora: the PEFT logits, loss and LoRA gradients, through 5 logit chunks', async () => {
    const out = join(tmp, 'lora.safetensors');
    const r = cli('forward', '--model', HF_TINY, '--adapter', ADAPTER, '--batch', BATCH, '--out', out, '--grads', 'lora', '--logit-rows', '100');
    expect(r.status, r.stderr).toBe(0);
    const got = await readAll(out);
    expect(maxAbs(got.get('logits')!.data, await refData('lora.logits'))).toBeLessThanOrEqual(1e-4);
    expect(Math.abs(got.get('loss')!.data[0]! - meta['lora.loss']) / meta['lora.loss']).toBeLessThanOrEqual(1e-5);
    expect([...got.keys()].filter((n) => n.startsWith('grad.'))).toEqual((meta['lora.names'] as string[]).map((n) => `grad.${n}`));
    for (const n of meta['lora.names'] as string[]) expect(relErr(got.get(`grad.${n}`)!.data, await refData(`lora.grad.${n}`)), n).toBeLessThanOrEqual(1e-3);
  });

  it.each([
    [['--model', HF_TINY, '--out', 'x.safetensors'], /--batch FILE is required/],
    [['--model', HF_TINY, '--batch', BATCH, '--out', 'x.safetensors', '--grads', 'all'], /--grads must be one of none, base, lora, got 'all'/],
    [['--model', HF_TINY, '--batch', BATCH, '--out', 'x.safetensors', '--grads', 'lora'], /--grads lora needs --adapter/],
    [['--model', HF_TINY, '--batch', BATCH, '--out', 'x.safetensors', '--logit-rows', '0'], /--logit-rows must be ≥ 1/],
    [['--model', HF_TINY, '--batch', join(HF_TINY, 'nope.safetensors'), '--out', 'x.safetensors'], /--batch .* does not exist/],
    [['--model', HF_TINY, '--batch', BATCH, '--out', join(HF_TINY, 'no/such/dir/x.safetensors')], /--out .*: directory .* does not exist/],
    [['--model', HF_TINY, '--batch', BATCH, '--out', 'x.safetensors', '--bogus'], /Unknown option '--bogus'/],
  ])('refuses %j as a usage error', async (args, msg) => {
    const err = await forward.run(args as string[]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(msg);
  });

  it('refuses a batch file without labels, in one line and before writing anything', () => {
    const out = join(tmp, 'never.safetensors');
    const r = cli('forward', '--model', HF_TINY, '--batch', join(HF_TINY, 'model.safetensors'), '--out', out);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('dawngrad:'))).toEqual([expect.stringMatching(/missing tensor "input_ids"/)]);
    expect(existsSync(out)).toBe(false);
  });
});

describe('dawngrad generate', () => {
  it('--chat prints the reply of the shared tiny model', () => {
    const r = cli('generate', '--model', TINY_MODEL, '--chat', 'I love this phone so much', '--max-new-tokens', '12');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().length).toBeGreaterThan(0);
    expect(r.stdout).not.toMatch(/<\|im_(start|end)\|>/); // special tokens are not printed
  });

  it.each([
    [['--model', TINY_MODEL], /exactly one of --prompt TEXT or --chat TEXT/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--chat', 'b'], /exactly one of --prompt TEXT or --chat TEXT/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--system', 'b'], /--system needs --chat/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--greedy', '--temperature', '0.7'], /--greedy cannot be combined/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--seed', '3'], /--seed only matters when sampling/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--temperature', '0'], /--temperature must be > 0/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--top-p', '1.5'], /--top-p must be ≤ 1/],
    [['--model', TINY_MODEL, '--prompt', 'a', '--max-new-tokens', '2.5'], /--max-new-tokens must be an integer/],
    [['--prompt', 'a'], /--model DIR is required/],
  ])('refuses %j as a usage error', async (args, msg) => {
    const err = await generateCmd.run(args as string[]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(msg);
  });
});
