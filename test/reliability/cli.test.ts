// Usage errors through the real CLI: unknown flags, wrong types and out-of-range values are refused before any work —
// exit 2, one line naming the flag, no output directory, and Dawn never even started (its start-up warnings would
// show on stderr). Plus the no-adapter path of `dawngrad info`.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dawngrad, expectRefusal, tempDir, tree, writeData, DAWN_STARTED, HF_TINY, ADAPTER } from './helpers.ts';

let tmp: string;
let data: string;
beforeAll(() => {
  tmp = tempDir();
  data = writeData(join(tmp, 'data'));
  writeFileSync(join(tmp, 'bad-r.json'), JSON.stringify({ r: 0 }));
  writeFileSync(join(tmp, 'typo.json'), JSON.stringify({ learning_rate: 1e-3 }));
  writeFileSync(join(tmp, 'neg.json'), JSON.stringify({ maxTrain: -5 }));
  writeFileSync(join(tmp, 'broken.json'), '{"r": 8,');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.concurrent('flags are refused before any work (exit 2, one line, nothing written)', () => {
  // $OUT stands for a run directory inside the case's own (empty) working directory
  const train = (...a: string[]) => ['train', '--model', HF_TINY, '--data', data, '--out', '$OUT', ...a];
  const cases: [string, () => string[], RegExp][] = [
    ['an unknown flag', () => train('--bogus'), /train: Unknown option '--bogus'/],
    ['a misspelt flag', () => train('--learning-rate', '1e-3'), /Unknown option '--learning-rate'/],
    ['a number flag given text', () => train('--lr', 'fast'), /--lr must be a number, got 'fast'/],
    ['a missing flag value', () => train('--r'), /--r/],
    ['--r 0', () => train('--r', '0'), /--r must be ≥ 1, got '0'/],
    ['--lr 0', () => train('--lr', '0'), /--lr must be > 0, got '0'/],
    ['--batch-size 0', () => train('--batch-size', '0'), /--batch-size must be ≥ 1, got '0'/],
    ['--epochs 1.5', () => train('--epochs', '1.5'), /--epochs must be an integer, got '1.5'/],
    ['--dropout 1', () => train('--dropout', '1'), /--dropout must be ≤ 0.99, got '1'/],
    ['--eval-mode maybe', () => train('--eval-mode', 'maybe'), /--eval-mode must be both, first-token or generate, got 'maybe'/],
    ['--recipe turbo', () => train('--recipe', 'turbo'), /--recipe must be one of auto, full, quick, seed, best, got 'turbo'/],
    ['--resume without --out', () => ['train', '--model', HF_TINY, '--data', data, '--resume'], /--resume needs --out DIR/],
    ['a boolean flag given a value', () => train('--resume=yes'), /--resume/],
    ['--data that does not exist', () => ['train', '--model', HF_TINY, '--data', join(tmp, 'nope'), '--out', '$OUT'], /--data .*nope: no such directory/],
    ['--config with r 0', () => train('--config', join(tmp, 'bad-r.json')), /--r must be a positive integer, got 0/],
    ['--config with an unknown key', () => train('--config', join(tmp, 'typo.json')), /typo\.json: unknown option "learning_rate"/],
    ['--config with maxTrain -5', () => train('--config', join(tmp, 'neg.json')), /--max-train must be a positive integer, got -5/],
    // a negative number after a flag is its value, not an "ambiguous" option
    ['--max-train -1', () => train('--max-train', '-1'), /^dawngrad: train: --max-train must be ≥ 1, got '-1'$/],
    ['--max-length 0', () => train('--max-length', '0'), /--max-length must be ≥ 1, got '0'/],
    ['predict --batch-size -4', () => ['predict', '--model', HF_TINY, '--batch-size', '-4', 'a tweet'], /predict: --batch-size must be ≥ 1, got '-4'/],
    ['--config that is not JSON', () => train('--config', join(tmp, 'broken.json')), /--config .*broken\.json: /],
    ['eval --batch-size 0', () => ['eval', '--model', HF_TINY, '--data', data, '--batch-size', '0'], /eval: --batch-size must be ≥ 1, got '0'/],
    ['eval --split with a slash', () => ['eval', '--model', HF_TINY, '--data', data, '--split', '../x'], /eval: --split must be a split name .*got '\.\.\/x'/],
    ['merge without --out', () => ['merge', '--model', HF_TINY, '--adapter', ADAPTER], /merge: --out DIR is required/],
    ['merge --dtype f8', () => ['merge', '--model', HF_TINY, '--adapter', ADAPTER, '--out', 'x', '--dtype', 'f8'], /--dtype must be one of/],
    ['forward --grads lora without --adapter', () => ['forward', '--model', HF_TINY, '--batch', 'b.safetensors', '--out', 'o.safetensors', '--grads', 'lora'],
      /forward: --grads lora needs --adapter DIR/],
    ['an unknown command', () => ['trian'], /unknown command 'trian'/],
  ];

  it.each(cases)('%s', async (_, args, msg) => {
    const cwd = tempDir('dawngrad-cwd-'); // the default --out is runs/… under the working directory
    const out = join(cwd, 'run');
    const argv = args();
    const r = await dawngrad(argv.map((a) => (a === '$OUT' ? out : a)), { cwd });
    expectRefusal(r, 2, msg);
    expect(r.rawStderr, 'Dawn was started for a usage error').not.toMatch(DAWN_STARTED);
    expect(tree(cwd), 'a refused command wrote something').toEqual([]);
    rmSync(cwd, { recursive: true, force: true });
  });
});

describe.concurrent('a run that cannot start', () => {
  it('--resume of a directory that holds no checkpoint is refused before the model loads, and writes nothing', async () => {
    const cwd = tempDir('dawngrad-cwd-');
    const r = await dawngrad(['train', '--model', HF_TINY, '--data', data, '--out', join(cwd, 'run'), '--resume'], { cwd });
    expectRefusal(r, 1, /--resume: no checkpoint in .*run \(expected .*checkpoint\/trainer_state\.json\)/);
    expect(r.rawStderr, 'the GPU was started for a missing checkpoint').not.toMatch(DAWN_STARTED);
    expect(tree(cwd)).toEqual([]);
    rmSync(cwd, { recursive: true, force: true });
  });
});

describe.concurrent('no usable WebGPU adapter', () => {
  it('with no Vulkan driver, says how to install lavapipe', async () => {
    // a driver list naming a file that does not exist: the Vulkan loader finds no driver, so Dawn finds no adapter
    const none = join(tmp, 'no-such-icd.json');
    const r = await dawngrad(['info'], { env: { VK_ICD_FILENAMES: none, VK_DRIVER_FILES: none } });
    expectRefusal(r, 1, /no WebGPU adapter found\. On Debian bookworm install Mesa lavapipe .*apt-get install .*mesa-vulkan-drivers/);
  });

  it("refuses Dawn's null backend, which would run no kernel and read back garbage", async () => {
    const r = await dawngrad(['info'], { env: { DAWNGRAD_BACKEND: 'null' } });
    expectRefusal(r, 1, /DAWNGRAD_BACKEND=null selects Dawn's null backend, which runs no kernels/);
  });

  it('an adapter name that matches nothing lists what there is, on one line', async () => {
    const r = await dawngrad(['info'], { env: { DAWNGRAD_ADAPTER: 'no-such-gpu' } });
    expectRefusal(r, 1, /no WebGPU adapter for DAWNGRAD_ADAPTER=no-such-gpu: .*[Aa]vailable adapters/);
  });

  it('an unknown backend name lists the possible ones, on one line', async () => {
    const r = await dawngrad(['info'], { env: { DAWNGRAD_BACKEND: 'bogus' } });
    expectRefusal(r, 1, /no WebGPU adapter for DAWNGRAD_BACKEND=bogus: unrecognised backend 'bogus'.*vulkan/);
  });
});
