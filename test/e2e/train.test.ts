// The main job end to end on the shared tiny model and the shared TweetEval data, through the real CLI: a few LoRA steps
// make the loss fall, and the run directory holds a PEFT adapter (with its model card), metrics, plots and a summary;
// `dawngrad eval` and `dawngrad predict` then use the saved adapter.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync, existsSync, rmSync } from 'node:fs';
import { SafetensorsFile } from '@dawngrad/model';
import { dawngrad, tempDir } from '../reliability/helpers.ts';
import { TINY_MODEL, TWEETS } from '../shared.ts';

let out: string;
beforeAll(() => {
  out = join(tempDir('dawngrad-e2e-'), 'run');
});
afterAll(() => rmSync(join(out, '..'), { recursive: true, force: true }));

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('dawngrad train on the shared tiny model', () => {
  it('trains, evaluates and writes a complete run directory', async () => {
    const r = await dawngrad(
      ['train', '--model', TINY_MODEL, '--data', TWEETS, '--max-train', '48', '--max-eval', '12', '--max-steps', '4',
        '--batch-size', '8', '--lr', '3e-3', '--eval-mode', 'both', '--eval-batch-size', '12', '--checkpoint-every', '2', '--out', out],
      { timeoutMs: 600_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/test macro-F1 \d\.\d{4} → \d\.\d{4}/);

    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    for (const m of metrics) {
      expect(Number.isFinite(m.loss) && Number.isFinite(m.gradNorm) && m.lr > 0).toBe(true);
    }
    expect(metrics[3].loss).toBeLessThan(metrics[0].loss);

    for (const dir of ['adapter-best', 'adapter-last']) {
      const cfg = JSON.parse(readFileSync(join(out, dir, 'adapter_config.json'), 'utf8'));
      expect(cfg.peft_type).toBe('LORA');
      expect(cfg.r).toBe(8);
      const f = await SafetensorsFile.open(join(out, dir, 'adapter_model.safetensors'));
      // PEFT's saved keys: no adapter name, 7 linear layers × 4 decoder layers × (A, B)
      expect(f.names()).toHaveLength(56);
      expect(f.names()).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
      await f.close();
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.steps).toBe(4);
    expect(summary.after.n).toBe(12);
    expect(summary.after.generate.macroF1).toBeGreaterThanOrEqual(0);
    expect(summary.after.firstToken.macroF1).toBeGreaterThanOrEqual(0);
    for (const f of ['confusion_before', 'confusion_after', 'loss']) {
      expect(readFileSync(join(out, `${f}.png`)).subarray(0, 8).equals(PNG)).toBe(true);
      expect(readFileSync(join(out, `${f}.svg`), 'utf8')).toMatch(/^<svg|<\?xml/);
    }
    const card = readFileSync(join(out, 'adapter-best', 'README.md'), 'utf8');
    expect(card).toMatch(/^---\n/);
    expect(card).toContain('library_name: peft');
    expect(card).toContain(summary.after.generate.macroF1.toFixed(4));
    expect(existsSync(join(out, 'checkpoint', 'trainer_state.json'))).toBe(true);
  });

  it('eval and predict use the saved adapter', async () => {
    const e = await dawngrad(['eval', '--model', TINY_MODEL, '--adapter', join(out, 'adapter-best'), '--data', TWEETS, '--split', 'validation',
      '--max-eval', '9', '--mode', 'first-token'], { timeoutMs: 300_000 });
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/by first-token scoring on 9 tweets/);
    const p = await dawngrad(['predict', '--model', TINY_MODEL, '--adapter', join(out, 'adapter-best'), 'I love this!', 'worst day ever'],
      { timeoutMs: 300_000 });
    expect(p.code, p.stderr).toBe(0);
    const lines = p.stdout.trim().split('\n').filter((l) => l.includes('\t'));
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^(negative|neutral|positive|invalid)\t/);
  });
});
