// The model card (a Hugging Face README.md with YAML front matter) of a run, made from its summary.json alone:
// nothing in it is typed by hand, so it cannot drift from what the run measured.
import { headline, headlineMethod, type RunSummary, type EvalSummary } from './report.ts';
import { LABEL_NAMES } from './data.ts';

const pct = (x: number) => (100 * x).toFixed(1) + '%';
const f4 = (x: number) => x.toFixed(4);

function headlineF1(e: EvalSummary): number {
  return headline(e).macroF1;
}

function perClassTable(e: EvalSummary): string {
  const m = headline(e);
  const rows = m.perClass.map((c) => `| ${c.label} | ${f4(c.precision)} | ${f4(c.recall)} | ${f4(c.f1)} | ${c.support} |`);
  return ['| class | precision | recall | F1 | support |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

/** The card's markdown. `runDir` is the run directory relative to where the card is written (for the images). */
export function modelCard(s: RunSummary, runDir: string): string {
  const after = headlineF1(s.after);
  const before = s.before ? headlineF1(s.before) : null;
  const method = headlineMethod(s.after);
  const front = [
    '---',
    `base_model: ${yamlString(s.model)}`,
    'library_name: peft',
    'pipeline_tag: text-generation',
    'tags:',
    '  - lora',
    '  - dawngrad',
    '  - sentiment-analysis',
    '  - tweet_eval',
    'datasets:',
    '  - cardiffnlp/tweet_eval',
    'metrics:',
    '  - f1',
    'model-index:',
    `  - name: ${yamlString(`dawngrad-lora-${s.recipe}`)}`,
    '    results:',
    '      - task: { type: text-classification, name: tweet sentiment }',
    '        dataset: { type: cardiffnlp/tweet_eval, name: tweet_eval sentiment, split: test }',
    '        metrics:',
    `          - { type: f1, name: macro-F1, value: ${f4(after)} }`,
    '---',
  ];
  const o = s.options;
  const img = (f: string | undefined, alt: string) => (f ? `![${alt}](${runDir}/${f})` : '');
  const samples = (s.after.samples ?? []).map((x) => `| ${x.text.replace(/\|/g, '\\|').replace(/\n/g, ' ')} | ${x.expected} | ${x.output.replace(/\|/g, '\\|')} |`);
  return [
    ...front,
    '',
    `# LoRA adapter: tweet sentiment (${s.recipe} recipe)`,
    '',
    `A LoRA adapter for \`${s.model}\` that answers a tweet's sentiment as one word (${LABEL_NAMES.join(' / ')}),`,
    'trained with dawngrad — our own WebGPU kernels, autograd, model, LoRA and AdamW in TypeScript.',
    '',
    '## Task and data',
    '',
    `TweetEval sentiment (\`${o.data}\`): ${s.after.n} test tweets evaluated. The prompt is the model's chat template with the`,
    `system message \`${o.system ?? 'Classify the sentiment of the tweet as negative, neutral or positive.'}\`, the tweet as the user turn and the`,
    'generation prompt; the answer is the label word followed by the end token, and the loss covers the answer tokens only.',
    '',
    '## Results',
    '',
    `Macro-F1 on the test split by ${method}: **${before === null ? '—' : f4(before)} → ${f4(after)}**` +
      (s.after.generate && !s.after.calibrated ? ` (invalid answers: ${pct(s.after.generate.invalidRate)})` : '') + '.',
    s.after.calibrated ? `\n\`dawngrad predict\` and \`dawngrad eval\` with this adapter score the same way (the prior is in \`calibration.json\`).` : '',
    s.after.firstToken && (s.after.generate || s.after.calibrated) ? `\nBy first-token scoring: ${s.before?.firstToken ? f4(s.before.firstToken.macroF1) : '—'} → ${f4(s.after.firstToken.macroF1)}.` : '',
    s.after.calibrated && s.after.generate ? `\nBy generation: ${s.before?.generate ? f4(s.before.generate.macroF1) : '—'} → ${f4(s.after.generate.macroF1)} (invalid answers: ${pct(s.after.generate.invalidRate)}).` : '',
    s.after.calibrated ? `\nThe label prior divided out (negative / neutral / positive): ${s.after.calibrated.prior.map((p) => p.toFixed(3)).join(' / ')}.` : '',
    '',
    perClassTable(s.after),
    '',
    img(s.files.confusionBeforePng, 'confusion matrix before'),
    img(s.files.confusionAfterPng, 'confusion matrix after'),
    img(s.files.lossPng, 'training loss'),
    '',
    '## Sample generations (seeded draw from the test split)',
    '',
    '| tweet | expected | model output |',
    '| --- | --- | --- |',
    ...samples,
    '',
    '## Training',
    '',
    '| setting | value |',
    '| --- | --- |',
    `| LoRA | r ${s.lora.r}, alpha ${s.lora.alpha}, dropout ${s.lora.dropout}, targets ${JSON.stringify(s.lora.targetModules)} (${s.lora.layers} layers, ${s.lora.trainable} values) |`,
    `| optimiser | AdamW lr ${o.lr}, weight decay ${o.weightDecay}, clip ${o.clip}, ${o.schedule} schedule, warm-up ${o.warmup} |`,
    `| batches | ${o.batchSize} × ${o.gradAccum} accumulation, ${s.steps} steps, ${o.epochs} epoch(s)${o.maxTrain ? `, first ${o.maxTrain} train tweets` : ''} |`,
    `| seed | ${o.seed} |`,
    ...((s.techniques ?? []).length ? [`| beyond the plain recipe | ${s.techniques.join('; ')} |`] : []),
    `| hardware | ${s.hardware.adapter}, ${s.hardware.cpus} CPUs |`,
    `| time | training ${s.trainSeconds.toFixed(0)} s (${s.trainTokensPerSecond.toFixed(0)} tokens/s), whole run ${s.wallSeconds.toFixed(0)} s |`,
    '',
    '## Reproduce',
    '',
    '```',
    s.command,
    '```',
    '',
  ].join('\n');
}
