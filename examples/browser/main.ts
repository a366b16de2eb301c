// The demo page: the same dawngrad packages as in Node, on this browser's navigator.gpu. It loads the tiny tweet model
// from a URL (served beside the page) or a picked folder, chats a reply, trains a LoRA adapter for N steps on a handful
// of TweetEval tweets with a live loss curve, and classifies a typed tweet by the three label words' first-token
// probabilities. `?auto=1&steps=2&batch=4` runs all four in order (the browser test takes its screenshot that way).
import { init, rt } from '@dawngrad/tensor';
import { loadModel, HfTokenizer, urlSource, filesSource, generate, type FileSource, type MistralForCausalLM } from '@dawngrad/model';
import { inject, type LoraModel } from '@dawngrad/lora';
// train's index also holds its Node CLI and file readers: the page takes the browser-safe modules one by one
import { PromptFormat, type Example } from '../../packages/train/src/prompts.ts';
import { trainBatch } from '../../packages/train/src/batching.ts';
import { forwardBackward, optimizerStep } from '../../packages/train/src/step.ts';
import { AdamW } from '../../packages/train/src/optim/adamw.ts';
import { LABEL_NAMES } from '../../packages/train/src/labels.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

interface Loaded {
  model: MistralForCausalLM;
  tokenizer: HfTokenizer;
  fmt: PromptFormat;
  lora: LoraModel | null;
  opt: AdamW | null;
}
let loaded: Loaded | null = null;
let busy = false;
/** What the page did, for the browser test (and anyone curious in the console). */
const result: Record<string, unknown> = {};
(globalThis as Record<string, unknown>).demoResult = result;

function fail(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  $('error').hidden = false;
  $('error').textContent = msg;
  document.body.dataset.state = result.state = 'error';
  result.error = msg;
}

/** Run one action at a time (the GPU work of two would interleave in one command encoder). */
async function exclusive<T>(fn: () => Promise<T>): Promise<T | undefined> {
  if (busy) return undefined;
  busy = true;
  document.querySelectorAll('button').forEach((b) => (b.disabled = true));
  try {
    return await fn();
  } catch (e) {
    fail(e);
    return undefined;
  } finally {
    busy = false;
    document.querySelectorAll('button').forEach((b) => (b.disabled = false));
  }
}

async function showAdapter(): Promise<boolean> {
  await init();
  const { info, adapterClass, features } = rt().ctx;
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unnamed adapter';
  $('adapter').textContent = `${name} (${adapterClass}${features.includes('shader-f16') ? ', shader-f16' : ''})`;
  result.adapter = name;
  result.adapterClass = adapterClass;
  const software = adapterClass === 'cpu';
  if (software) $('adapter-note').textContent = 'a software adapter: the GPU work runs on the CPU, so the step count is kept small';
  return software;
}

async function load(src: FileSource): Promise<void> {
  const t0 = performance.now();
  $('model-status').textContent = `loading ${src.name} …`;
  if (loaded) {
    (loaded.lora ?? loaded.model).dispose();
    loaded.opt?.dispose();
    loaded = null;
  }
  const tokenizer = await HfTokenizer.load(src);
  const model = await loadModel(src);
  const c = model.config;
  loaded = { model, tokenizer, fmt: new PromptFormat(tokenizer), lora: null, opt: null };
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  $('model-status').textContent = `${src.name}: ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}, loaded in ${s} s`;
  result.loadSeconds = Number(s);
}

const need = (): Loaded => {
  if (!loaded) throw new Error('load a model first');
  return loaded;
};

async function chat(): Promise<void> {
  const { model, tokenizer } = need();
  const text = $<HTMLTextAreaElement>('chat-in').value;
  const prompt = tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: text }], { addGenerationPrompt: true }));
  const t0 = performance.now();
  const r = await generate(model, [prompt], { maxNewTokens: 24, stopTokens: tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId] });
  const s = (performance.now() - t0) / 1000;
  const reply = tokenizer.decode(r.ids[0]!, { skipSpecialTokens: true }).trim();
  $('chat-out').textContent = `${reply || '(empty)'}\n— ${r.ids[0]!.length} tokens in ${s.toFixed(1)} s (${(r.ids[0]!.length / s).toFixed(1)} tokens/s)`;
  result.reply = reply;
}

/** A small loss curve: one point per step. */
function drawLoss(losses: number[], steps: number): void {
  const svg = $('loss') as unknown as SVGSVGElement;
  const [W, H, pad] = [940, 150, 28];
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const [min, max] = [lo - 0.1 * (hi - lo || 1), hi + 0.1 * (hi - lo || 1)];
  const x = (i: number) => pad + (i / Math.max(1, steps - 1)) * (W - 2 * pad);
  const y = (v: number) => H - pad + ((min - v) / Math.max(1e-9, max - min)) * (H - 2 * pad);
  const pts = losses.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  svg.innerHTML =
    `<text x="${pad}" y="16" font-size="12" fill="#6e6e73">loss ${hi.toFixed(3)} … ${lo.toFixed(3)}</text>` +
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#ccc"/>` +
    `<polyline points="${pts}" fill="none" stroke="#0a84ff" stroke-width="2"/>` +
    losses.map((v, i) => `<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="#0a84ff"/>`).join('') +
    `<text x="${W - pad}" y="${H - 8}" font-size="12" text-anchor="end" fill="#6e6e73">step ${losses.length} / ${steps}</text>`;
}

async function train(): Promise<void> {
  const L = need();
  const steps = Number($<HTMLInputElement>('steps').value);
  const batchSize = Number($<HTMLInputElement>('batch').value);
  const lr = Number($<HTMLInputElement>('lr').value);
  if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(batchSize) || batchSize < 1 || !(lr > 0)) {
    throw new Error('steps and batch must be positive integers, lr a positive number');
  }
  const tweets = (await (await fetch('tweets.json')).json()) as { texts: string[]; labels: number[] };
  const examples: Example[] = L.fmt.examples(tweets.texts, tweets.labels);
  // all linear layers, r 8 / α 16: the project's recipe; a second Train continues the same adapter
  L.lora ??= inject(L.model, { r: 8, lora_alpha: 16, target_modules: 'all-linear', seed: 0 });
  L.lora.train();
  L.opt ??= new AdamW(L.lora.parameters(), { lr, weightDecay: 0.01, maxGradNorm: 1 });
  const losses: number[] = [];
  let tokens = 0;
  const t0 = performance.now();
  for (let step = 0; step < steps; step++) {
    const rows = Array.from({ length: batchSize }, (_, i) => examples[(step * batchSize + i) % examples.length]!);
    const batch = trainBatch(rows);
    const loss = forwardBackward(L.model, batch);
    optimizerStep(L.opt, lr);
    batch.dispose();
    losses.push(await loss.item()); // read every step: the curve is live (training code reads one step late instead)
    loss.dispose();
    tokens += rows.reduce((n, r) => n + r.prompt.length + r.answer.length, 0);
    const s = (performance.now() - t0) / 1000;
    $('train-stats').textContent = `step ${step + 1}/${steps}  loss ${losses.at(-1)!.toFixed(4)}  ${(tokens / s).toFixed(0)} tokens/s  ${(s / (step + 1)).toFixed(2)} s/step`;
    drawLoss(losses, steps);
  }
  L.lora.eval();
  const s = (performance.now() - t0) / 1000;
  Object.assign(result, { losses, tokensPerSecond: tokens / s, secondsPerStep: s / steps, lora: `r 8 on ${L.lora.layers.length} layers` });
}

async function classify(): Promise<void> {
  const L = need();
  const text = $<HTMLTextAreaElement>('tweet-in').value;
  const r = await generate(L.model, [L.fmt.prompt(text)], { maxNewTokens: 3, firstTokenIds: L.fmt.firstTokens, stopTokens: [L.fmt.endToken] });
  const z = Array.from(r.firstTokenLogits!);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const probs = e.map((v) => v / e.reduce((a, b) => a + b, 0));
  $('probs').innerHTML = LABEL_NAMES.map(
    (n, i) => `<div class="bar"><span>${n}</span><div style="width:${(probs[i]! * 100).toFixed(1)}%"></div><span>${(probs[i]! * 100).toFixed(1)}%</span></div>`,
  ).join('');
  const answer = L.fmt.parseAnswer(r.ids[0]!);
  $('classify-note').textContent = `${L.lora ? 'with the LoRA adapter' : 'base model (train first for a better guess)'}; the model's own answer: ${answer >= 0 ? LABEL_NAMES[answer] : '(not a label word)'}`;
  result.probabilities = Object.fromEntries(LABEL_NAMES.map((n, i) => [n, probs[i]]));
}

$('load').onclick = () => exclusive(() => load(urlSource($<HTMLInputElement>('model-url').value)));
$('pick').onchange = (ev) => {
  const files = (ev.target as HTMLInputElement).files;
  if (files && files.length) void exclusive(() => load(filesSource(files, files[0]!.webkitRelativePath.split('/')[0] || 'picked files')));
};
$('chat').onclick = () => exclusive(chat);
$('train').onclick = () => exclusive(train);
$('classify').onclick = () => exclusive(classify);

exclusive(async () => {
  const software = await showAdapter();
  if (software) $<HTMLInputElement>('steps').value = '3';
  for (const k of ['steps', 'batch', 'lr']) if (params.has(k)) $<HTMLInputElement>(k).value = params.get(k)!;
  document.body.dataset.state = 'ready';
  if (params.get('auto') !== '1') return;
  await load(urlSource($<HTMLInputElement>('model-url').value));
  await chat();
  await train();
  await classify();
  document.body.dataset.state = result.state = 'done';
});
