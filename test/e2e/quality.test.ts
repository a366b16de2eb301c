// The quality knobs through the real CLI on the shared tiny model: `--recipe best` with label smoothing, class-balanced
// rows, rsLoRA, LoRA on lm_head and calibrated first-token scoring runs, uses each (the rows, the adapter's config, the
// calibrated headline), and names each in summary.json, the printed result and the model card.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { dawngrad, tempDir, expectRefusal } from '../reliability/helpers.ts';
import { TINY_MODEL, TWEETS } from '../shared.ts';

const root = tempDir('dawngrad-quality-');
afterAll(() => rmSync(root, { recursive: true, force: true }));
const LINEARS = 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj';

describe('dawngrad train with the quality knobs', () => {
  it('--recipe best with smoothing, balance, rsLoRA, lm_head and calibration: used, scored and named', async () => {
    const out = join(root, 'run');
    const r = await dawngrad(
      ['train', '--recipe', 'best', '--model', TINY_MODEL, '--data', TWEETS, '--max-train', '30', '--max-eval', '12', '--max-steps', '2',
        '--batch-size', '8', '--lr', '3e-3', '--eval-batch-size', '12', '--label-smoothing', '0.1', '--balance', 'down', '--rslora',
        '--targets', `${LINEARS},lm_head`, '--calibrate', 'validation', '--out', out],
      { timeoutMs: 600_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/train 30,/); // --balance down: 10 rows of each class
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(s.recipe).toBe('best');
    expect(s.techniques).toEqual([
      'label smoothing 0.1',
      'class-balanced rows (the first rows of each class in equal numbers)',
      "calibrated first-token scoring (the validation split's label prior divided out)",
      'rsLoRA scaling (alpha/√r)',
      'LoRA on lm_head',
    ]);
    // the headline is the calibrated score, before and after, and the prior it divided out is a distribution
    for (const e of [s.before, s.after]) {
      expect(e.calibrated.method).toBe('validation');
      expect(e.calibrated.prior.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 6);
      expect(e.generate && e.firstToken).toBeTruthy(); // the plain scores stay in the summary
    }
    expect(r.stdout).toContain(`test macro-F1 ${s.before.calibrated.macroF1.toFixed(4)} → ${s.after.calibrated.macroF1.toFixed(4)}`);
    expect(s.validation[0].macroF1).toBeGreaterThanOrEqual(0);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter-best', 'adapter_config.json'), 'utf8'));
    expect(cfg.use_rslora).toBe(true);
    expect(cfg.target_modules).toContain('lm_head');
    const card = readFileSync(join(out, 'adapter-best', 'README.md'), 'utf8');
    expect(card).toContain("first-token scoring calibrated by the validation split's label prior");
    expect(card).toContain('label smoothing 0.1');
    expect(card).toContain(s.after.calibrated.macroF1.toFixed(4));
    // the adapter carries its prior: predict and eval score the way the run did, unless told not to
    const cal = JSON.parse(readFileSync(join(out, 'adapter-best', 'calibration.json'), 'utf8'));
    expect(cal).toEqual({ method: 'validation', prior: s.after.calibrated.prior, labels: ['negative', 'neutral', 'positive'] });
    const p = await dawngrad(['predict', '--model', TINY_MODEL, '--adapter', join(out, 'adapter-best'), 'I love this!', 'worst day ever'], { timeoutMs: 300_000 });
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/predict: calibrated first-token scoring \(the validation prior in .*calibration\.json/);
    expect(p.stdout.trim().split('\n').filter((l) => l.includes('\t'))).toEqual([
      expect.stringMatching(/^(negative|neutral|positive)\tI love this!$/), expect.stringMatching(/^(negative|neutral|positive)\tworst day ever$/)]);
    const g = await dawngrad(['predict', '--model', TINY_MODEL, '--adapter', join(out, 'adapter-best'), '--no-calibration', 'I love this!'], { timeoutMs: 300_000 });
    expect(g.code, g.stderr).toBe(0);
    expect(g.stderr).not.toMatch(/calibrated/);
    const e = await dawngrad(['eval', '--model', TINY_MODEL, '--adapter', join(out, 'adapter-best'), '--data', TWEETS, '--max-eval', '9', '--mode', 'first-token'],
      { timeoutMs: 300_000 });
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/by first-token scoring, \d\.\d{4} calibrated \(validation prior /);
  });

  it('refuses a bad knob before any work, in one line', async () => {
    expectRefusal(await dawngrad(['train', '--balance', 'sideways', '--out', join(root, 'refused')]), 2, /--balance must be one of none, down, up, got 'sideways'/);
    expectRefusal(await dawngrad(['train', '--calibrate', 'validation', '--eval-mode', 'generate', '--out', join(root, 'refused')]), 2,
      /--calibrate validation needs first-token scores/);
    expectRefusal(await dawngrad(['train', '--label-smoothing', '1', '--out', join(root, 'refused')]), 2, /--label-smoothing must be ≤ 0.99/);
  });
});
