// Issue 16's GPU scripts without a GPU: quality.py's choice rule on made-up proxy results (the mean over seeds wins,
// unfinished configurations do not compete, a tie goes to the cheaper one), and quality.sh's seeds phase orchestrated
// against a fake .gpu/run.sh (who gets which flags, the table, quality.json's means). The real thing ran here at a
// tiny scale on lavapipe and CPU PyTorch (scripts/recipe/README.md, session 4); search.py needs torch, so it is not here.
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, copyFileSync, rmSync, mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './shared.ts';

const QUALITY = join(REPO, 'scripts/recipe/quality.py');
const hasPython = spawnSync('python3', ['--version']).status === 0;
const root = mkdtempSync(join(tmpdir(), 'dawngrad-quality-scripts-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const py = (...args: string[]) => execFileSync('python3', [QUALITY, ...args], { encoding: 'utf8' });

describe.skipIf(!hasPython)('quality.py', () => {
  it('choose: the highest mean over seeds, finished configurations only, ties to the cheaper', () => {
    const dir = join(root, 'search');
    mkdirSync(dir);
    const settings = (maxTrain: number | null, epochs = 1) => ({ lr: 1e-3, batchSize: 32, maxTrain, epochs, r: 8, alpha: 16, schedule: 'linear', warmup: 0.1, bucketWindow: 16 });
    writeFileSync(join(dir, 'candidates.json'), JSON.stringify({
      best: [
        { name: 'a', settings: settings(null, 2), seeds: [0, 1] },
        { name: 'b', settings: { ...settings(null), lmHead: true }, seeds: [0, 1] },
        { name: 'c', settings: settings(null), seeds: [0, 1] }, // one seed only: may not win, however high
      ],
      demo: [{ name: 'q', settings: { ...settings(4800), balance: 'down' }, seeds: [0] }],
    }));
    const run = (tag: string, ft: number, cf: number, val: number) => JSON.stringify({ tag, best: { ft_f1: ft, ft_f1_cf: cf, ft_f1_val: val } });
    writeFileSync(join(dir, 'results.jsonl'), [
      run('best:a:s0', 0.50, 0.40, 0.56), run('best:a:s1', 0.52, 0.40, 0.54), // val mean 0.55, 2 epochs
      run('best:b:s0', 0.60, 0.40, 0.50), run('best:b:s1', 0.50, 0.40, 0.50), // plain mean 0.55, 1 epoch: cheaper, wins the tie
      run('best:c:s0', 0.90, 0.90, 0.90),
      run('demo:q:s0', 0.30, 0.35, 0.42),
    ].join('\n') + '\n');
    const printed = py('choose', '--dir', dir);
    const choice = JSON.parse(readFileSync(join(dir, 'choice.json'), 'utf8'));
    expect(choice.best.configuration).toBe('b');
    expect(choice.best.calibration).toBe('none');
    expect(choice.best.mean).toBeCloseTo(0.55, 12);
    expect(choice.best.dawngrad_flags).toEqual(['--recipe', 'full', '--lr', '0.001', '--batch-size', '32', '--epochs', '1', '--r', '8', '--alpha', '16',
      '--schedule', 'linear', '--warmup', '0.1', '--bucket-window', '16', '--balance', 'none', '--targets', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head',
      '--calibrate', 'none']);
    expect(choice.demo.configuration).toBe('q');
    expect(choice.demo.calibration).toBe('validation');
    expect(choice.demo.dawngrad_flags.join(' ')).toContain('--recipe quick');
    expect(choice.demo.dawngrad_flags.join(' ')).toMatch(/--max-train 4800 --balance down --targets all-linear --calibrate validation$/);
    expect(choice.demo.recipe).toBe("{ targets: 'all-linear', r: 8, alpha: 16, lr: 0.001, batchSize: 32, epochs: 1, schedule: 'linear', warmup: 0.1, " +
      "bucketWindow: 16, maxTrain: 4800, maxEval: 400, balance: 'down', calibrate: 'validation' }");
    expect(printed).toMatch(/\| best \| b \*\*\(chosen\)\*\* \| none \| 2\/2 \| 0\.6000 \/ 0\.5000 \| 0\.5500 \|/);
    expect(printed).toMatch(/\| best \| c \| none \| 1\/2 \| 0\.9000 \|/);
  });

  it('plan: every configuration × seed once, longest first, with search.py flags that match the settings', () => {
    const dir = join(root, 'plan');
    py('plan', '--out', dir);
    const plan = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')) as [string, string[]][];
    const groups = JSON.parse(readFileSync(join(dir, 'candidates.json'), 'utf8'));
    const planned = Object.entries(groups).flatMap(([g, cs]) => (cs as { name: string; seeds: number[] }[]).flatMap((c) => c.seeds.map((s) => `${g}:${c.name}:s${s}`)));
    expect(plan.map(([t]) => t).sort()).toEqual(planned.sort());
    const flag = (args: string[], f: string) => args[args.indexOf(f) + 1];
    expect(flag(plan[0]![1], '--balance')).toBe('up'); // the longest run (balance up over the whole split) goes first
    expect(plan.at(-1)![0]).toMatch(/^demo:/);
    for (const [t, args] of plan) expect(flag(args, '--seed')).toBe(t.split(':s')[1]);
  });
});

describe.skipIf(!hasPython)('quality.sh seeds, orchestrated against a fake dawngrad', () => {
  it('launches every seed with the right flags side by side and collects quality.json', () => {
    const repo = join(root, 'repo');
    mkdirSync(join(repo, 'scripts/gpu'), { recursive: true });
    mkdirSync(join(repo, 'scripts/recipe'), { recursive: true });
    mkdirSync(join(repo, '.gpu'));
    writeFileSync(join(repo, 'pnpm-workspace.yaml'), '');
    copyFileSync(join(REPO, 'scripts/gpu/quality.sh'), join(repo, 'scripts/gpu/quality.sh'));
    copyFileSync(QUALITY, join(repo, 'scripts/recipe/quality.py'));
    // the fake: `info` prints an adapter; `train … --seed S … --out DIR` writes a summary whose test F1 is 0.5 + S/100
    // (0.6 + S/100 for the best recipe's lr), and records its arguments
    writeFileSync(join(repo, '.gpu/run.sh'), `#!/usr/bin/env bash
[ "$1" = info ] && { echo "adapter   nvidia / fake"; exit 0; }
args="$*"; seed=$(echo "$args" | sed -E 's/.*--seed ([0-9]+).*/\\1/'); out=$(echo "$args" | sed -E 's/.*--out ([^ ]+).*/\\1/')
mkdir -p "$out"; echo "$args" > "$out/args"
base=0.5; case "$args" in *"--lr 0.002"*) base=0.6 ;; esac
f1=$(python3 -c "print($base + $seed / 100)")
m='{"macroF1": '$f1', "metrics": {"perClass": [{"f1": 0.4}, {"f1": 0.5}, {"f1": 0.6}], "matrix": {"counts": [[1,0,0],[0,1,0],[0,0,1]]}}}'
cat > "$out/summary.json" <<EOF
{"options": {"seed": $seed}, "command": "dawngrad train $args", "hardware": {"adapter": "fake"}, "wallSeconds": 100, "trainSeconds": 90,
 "steps": 10, "techniques": [], "validation": [{"step": 10, "epoch": 1, "macroF1": 0.55}],
 "after": {"n": 3, "generate": {"macroF1": $f1, "invalidRate": 0, "metrics": $(echo "$m" | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['metrics']))")},
           "firstToken": $m}}
EOF
`);
    chmodSync(join(repo, '.gpu/run.sh'), 0o755);
    const out = join(root, 'out');
    const r = spawnSync('bash', ['scripts/gpu/quality.sh', 'seeds', '--best', '--recipe full --lr 0.002 --batch-size 32', '--full-seeds', '0 1 2', '--best-seeds', '0 1'],
      { cwd: repo, env: { ...process.env, OUT: out, PYTHON: 'python3' }, encoding: 'utf8' });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const args = (run: string) => readFileSync(join(out, 'seeds', run, 'args'), 'utf8').trim();
    expect(args('full-s0')).toMatch(/^train --recipe full --calibrate validation --seed 0 --checkpoint-every 0 --out /); // the one "before"
    expect(args('full-s2')).toContain('--seed 2 --checkpoint-every 0 --no-eval-before');
    expect(args('best-s1')).toMatch(/^train --recipe full --lr 0\.002 --batch-size 32 --seed 1 --checkpoint-every 0 --no-eval-before/);
    const q = JSON.parse(readFileSync(join(out, 'quality.json'), 'utf8'));
    expect(q.runs).toHaveLength(5);
    expect(q.summary.full.test_f1.mean).toBeCloseTo(0.51, 4);
    expect(q.summary.full.test_f1.sd).toBeCloseTo(0.01, 4);
    expect(q.summary.best.test_f1.values).toEqual([0.6, 0.61]);
    expect(q.peft.mean).toBeCloseTo(0.4858, 4);
    expect(r.stdout).toMatch(/\| full \(dawngrad\) \| 3 \| 0\.510 ± 0\.010 \|/);
  });
});
