// What a reader runs: the four programs in examples/ and the example in each package README, each as a subprocess
// (`node --import tsx`, from the repository root, as the READMEs say) with small settings, asserting on what they print.
// A README's example is the ```ts block that follows the marker comment `<!-- example: run by test/examples.test.ts -->`:
// the test writes that block to a temp file and runs it, so the README shows exactly the code CI runs.
// The READMEs' API sections are checked against the packages: every value a package exports must be named there, and
// the autograd README must explain the backward of every op in the registry.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, TINY_MODEL, TWEETS } from './shared.ts';

const TSX = pathToFileURL(createRequire(join(REPO, 'package.json')).resolve('tsx')).href;
const MARKER = '<!-- example: run by test/examples.test.ts -->';
const PACKAGES = ['tensor', 'autograd', 'model', 'lora', 'train'] as const;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a TypeScript file from the repository root, as `pnpm exec tsx FILE ARGS` would. */
function run(file: string, args: string[] = [], timeoutMs = 110_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, file, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Exit 0, or fail showing what the program said. */
function ok(r: Run): string {
  expect(r.code, `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(0);
  return r.stdout;
}

const numbers = (s: string) => [...s.matchAll(/-?\d+(?:\.\d+)?(?:e[-+]?\d+)?/gi)].map((m) => Number(m[0]));

/** The marked ```ts block of a README. */
function readmeExample(readme: string): string {
  const at = readme.indexOf(MARKER);
  if (at < 0) throw new Error(`no "${MARKER}" in the README`);
  const m = /```ts\n([\s\S]*?)\n```/.exec(readme.slice(at));
  if (!m) throw new Error('no ```ts block after the example marker');
  return m[1]!;
}

const readme = (p: string) => readFileSync(join(REPO, 'packages', p, 'README.md'), 'utf8');

let tmp: string;
beforeAll(() => {
  // inside the repository, so that tsx finds tsconfig.json's paths for @dawngrad/* (.tmp/ is git-ignored)
  mkdirSync(join(REPO, '.tmp'), { recursive: true });
  tmp = mkdtempSync(join(REPO, '.tmp', 'examples-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('examples/', () => {
  it('01-xor: the loss falls and the four predictions are XOR', async () => {
    const out = ok(await run('examples/01-xor.ts', ['--steps', '80']));
    const losses = [...out.matchAll(/^step +\d+ +loss (\S+)$/gm)].map((m) => Number(m[1]));
    expect(losses.length).toBeGreaterThanOrEqual(5);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! / 10);
    const preds = [...out.matchAll(/^ +(\d) xor (\d) -> (\S+) +\(target (\d)\)$/gm)];
    expect(preds.map((m) => `${m[1]}${m[2]}`)).toEqual(['00', '01', '10', '11']);
    for (const m of preds) expect(Math.round(Number(m[3])), `${m[1]} xor ${m[2]}`).toBe(Number(m[1]) ^ Number(m[2]));
  });

  it('02-generate: renders the chat prompt and prints the generated text', async () => {
    const out = ok(await run('examples/02-generate.ts', ['--max-new-tokens', '6', '--prompt', 'good morning']));
    expect(out).toMatch(/^prompt \(\d+ tokens\): ".*<\|im_start\|>user\\ngood morning<\|im_end\|>\\n<\|im_start\|>assistant\\n"$/m);
    const g = /^generated \((\d+) tokens, [\d.]+ tokens\/s\): "(.*)"$/m.exec(out);
    expect(g, out).not.toBeNull();
    expect(Number(g![1])).toBeGreaterThanOrEqual(1);
    expect(Number(g![1])).toBeLessThanOrEqual(6);
    expect(g![2]!.trim().length).toBeGreaterThan(0);
  });

  it('03-lora-finetune: trains, saves a PEFT adapter that `dawngrad eval` scores exactly as the example did, and 04 loads it merged', async () => {
    const adapter = join(tmp, 'adapter');
    const out = ok(
      await run('examples/03-lora-finetune.ts', ['--train', '12', '--batch-size', '4', '--eval', '24', '--eval-mode', 'first-token', '--save', adapter]),
    );
    const losses = [...out.matchAll(/^step +(\d+)\/3 +loss (\S+)$/gm)];
    expect(losses.map((m) => Number(m[1]))).toEqual([1, 2, 3]);
    for (const m of losses) expect(Number.isFinite(Number(m[2])) && Number(m[2]) > 0).toBe(true);
    const f1 = /^first-token macro-F1 (\S+) on 24 validation tweets$/m.exec(out);
    expect(f1, out).not.toBeNull();
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) expect(existsSync(join(adapter, f)), f).toBe(true);
    // the adapter on disk is the one the example evaluated: the CLI, reading it back, scores the same 24 tweets (the same
    // seeded subset, one batch) to the same macro-F1 — a save or load that lost or garbled a factor would not
    const e = ok(await run('packages/train/src/cli/main.ts', ['eval', '--model', TINY_MODEL, '--adapter', adapter, '--data', TWEETS, '--split', 'validation',
      '--max-eval', '24', '--batch-size', '32', '--mode', 'first-token']));
    expect(e).toContain(`${f1![1]} by first-token scoring on 24 tweets`);
    // example 4 loads it onto the tiny tweet model, merged: all 28 adapted layers, one prediction
    const p = ok(await run('examples/04-adapter-predict.ts', ['--model', TINY_MODEL, '--adapter', adapter, '--merge', 'what a game']));
    expect(p).toMatch(/: r 8, alpha 16, 28 layers \(q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj\)$/m);
    expect(p).toMatch(/^prediction: \S+ +answer ".*" +<- "what a game"$/m);
  });

  it('04-adapter-predict: loads the PEFT fixture adapter and prints a prediction per tweet', async () => {
    const out = ok(await run('examples/04-adapter-predict.ts', ['one tweet', 'another tweet']));
    expect(out).toMatch(/^adapter .*hf-tiny\/adapter: r 4, alpha 8, 4 layers \(k_proj, v_proj\)$/m); // adapter_config.json's values
    const lines = out.match(/^prediction: (negative|neutral|positive|\(none\)) +answer ".*" +<- ".*"$/gm) ?? [];
    expect(lines.map((l) => l.replace(/.*<- /, ''))).toEqual(['"one tweet"', '"another tweet"']);
    // merged into the weights, the same adapter gives the same answers (merge is exact up to f32 rounding)
    const merged = ok(await run('examples/04-adapter-predict.ts', ['--merge', 'one tweet', 'another tweet']));
    expect(merged.match(/^prediction: .*$/gm)).toEqual(lines);
  });
});

describe('package README examples', () => {
  const runReadme = async (p: string) => {
    const file = join(tmp, `readme-${p}.ts`);
    writeFileSync(file, readmeExample(readme(p)));
    return ok(await run(file));
  };

  it('tensor: the GPU matmul + softmax agree with the float64 CPU twin', async () => {
    const out = await runReadme('tensor');
    expect(out).toMatch(/\[ 4, 5, 10, 11 \]/); // [[1,2,3],[4,5,6]] · [[1,0],[0,1],[1,1]]
    const d = /max \|gpu - cpu\| = (\S+)/.exec(out);
    expect(d, out).not.toBeNull();
    expect(Number(d![1])).toBeLessThan(1e-6);
  });

  it('autograd: the gradient of Σ silu(x·Wᵀ) matches the chain rule by hand', async () => {
    const out = await runReadme('autograd');
    // x = [1, 2], W = [[0.5, -1], [2, 0.25]]: z = x·Wᵀ = [-1.5, 2.5]; dL/dW[j][i] = silu'(z_j)·x_i
    const dsilu = (z: number) => {
      const s = 1 / (1 + Math.exp(-z));
      return s * (1 + z * (1 - s));
    };
    const want = [dsilu(-1.5) * 1, dsilu(-1.5) * 2, dsilu(2.5) * 1, dsilu(2.5) * 2];
    const got = numbers(/^dL\/dW (.*)$/m.exec(out)?.[1] ?? '');
    expect(got.length).toBe(4);
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 4));
    expect(out).toMatch(/matmul backward: C = A·B: dA = g·Bᵀ, dB = Aᵀ·g/);
  });

  it('model: logits at the last row only, and a next token', async () => {
    const out = await runReadme('model');
    expect(out).toMatch(/^logits \[ 1, 1000 \]/m); // [rows asked for, vocab of hf-tiny]
    expect(out).toMatch(/^next token: \d+ ".*"$/m);
  });

  it('lora: a PEFT adapter gives the same logits merged into the weights', async () => {
    const out = await runReadme('lora');
    expect(out).toMatch(/^base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.default\.weight \[4,112\]$/m);
    const d = /max \|adapter - merged\| = (\S+)/.exec(out);
    expect(d, out).not.toBeNull();
    expect(Number(d![1])).toBeLessThan(1e-4);
  });

  it('train: repeated steps on one batch lower its loss; macro-F1 by hand', async () => {
    const out = await runReadme('train');
    const losses = [...out.matchAll(/^step (\d) loss (\S+)$/gm)].map((m) => Number(m[2]));
    expect(losses.length).toBe(5);
    expect(losses[4]!).toBeLessThan(losses[0]!);
    // y = [0, 1, 2, 2], predicted [0, 2, 2, 2]: F1 negative 1, neutral 0, positive 2·(2/3·1)/(2/3+1) = 0.8
    expect(Number(/^macro-F1 (\S+)$/m.exec(out)?.[1])).toBeCloseTo((1 + 0 + 0.8) / 3, 10);
  });
});

describe('package READMEs document the API', () => {
  it.each(PACKAGES)('%s: every exported value is named in its README', async (p) => {
    const mod = (await import(`@dawngrad/${p}`)) as Record<string, unknown>;
    const text = readme(p);
    const missing = Object.keys(mod).filter((name) => !text.includes(`\`${name}\``) && !new RegExp(`\`[^\`\\n]*\\b${name}\\b[^\`\\n]*\``).test(text));
    expect(missing, `packages/${p}/README.md does not mention`).toEqual([]);
  });

  it('every relative link in the reading guide and the READMEs points at a file that exists', () => {
    const docs = ['docs/reading-guide.md', 'examples/README.md', ...PACKAGES.map((p) => `packages/${p}/README.md`)];
    const broken: string[] = [];
    for (const doc of docs) {
      const text = readFileSync(join(REPO, doc), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(m[1]!)) continue; // http(s) and the like
        if (!existsSync(join(REPO, dirname(doc), m[1]!))) broken.push(`${doc}: ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('autograd: the README explains the backward of every registered op', async () => {
    const { registry } = await import('@dawngrad/autograd');
    const text = readme('autograd');
    const missing = [...registry.keys()].filter((op) => !new RegExp(`^#+ .*\`${op}\``, 'm').test(text) && !new RegExp(`^\\| \`${op}\``, 'm').test(text));
    expect(missing, 'ops with no heading or table row in packages/autograd/README.md').toEqual([]);
  });
});
