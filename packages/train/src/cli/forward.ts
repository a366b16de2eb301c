// dawngrad forward: one forward (and, when asked, backward) pass over a batch read from a safetensors file; the logits,
// the loss and the gradients go to another safetensors file under Hugging Face / PEFT names, ready to compare with
// transformers (e.g. shared/fixtures/hf-tiny/reference.safetensors).
//
// The logits are produced in row chunks: lm_head runs on at most --logit-rows rows of the final hidden states at a
// time, so [B*T, V] never has to fit one GPU binding (lavapipe's is 128 MiB: 1024 rows of a 32768-token vocabulary).
// The loss is transformers' mean over every labelled token, assembled from the chunks' means weighted by their counts.
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CliError, parse, num, precisionFlag, type Command } from './args.ts';

const USAGE = `usage: dawngrad forward --model DIR [--adapter DIR] --batch IN.safetensors --out OUT.safetensors [--grads none|base|lora] [--logit-rows N] [--precision f32|mixed]

  --model DIR         Hugging Face model directory (config.json + safetensors)
  --adapter DIR       PEFT LoRA adapter to plug in (dropout off)
  --batch FILE        input_ids, attention_mask, labels: integer tensors [B, T] (labels -100 where nothing is predicted)
  --out FILE          written atomically: logits F32 [B, T, V], loss F32 [1] (mean cross-entropy over the labels,
                      shifted as transformers does), and grad.<name> for each parameter --grads asks for
  --grads WHICH       none (default); base: every base parameter under its HF name; lora: the LoRA factors under their
                      PEFT names (needs --adapter)
  --logit-rows N      rows of logits per lm_head chunk (default: as many as one GPU binding holds)
  --precision P       f32 (default) or mixed: the frozen weights in f16, f16 matmuls summed in f32 (--grads base needs f32)`;

const GRADS = ['none', 'base', 'lora'] as const;
type Grads = (typeof GRADS)[number];

const BATCH_KEYS = ['input_ids', 'attention_mask', 'labels'] as const;

function need(flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new CliError(`forward: --${flag} ${flag === 'model' ? 'DIR' : 'FILE'} is required (see --help)`);
  return value;
}

export const forward: Command = {
  summary: 'logits, loss and gradients of a batch from a safetensors file, written under HF/PEFT names',
  async run(argv) {
    const { values: v } = parse('forward', argv, {
      model: { type: 'string' },
      adapter: { type: 'string' },
      batch: { type: 'string' },
      out: { type: 'string' },
      grads: { type: 'string' },
      'logit-rows': { type: 'string' },
      precision: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    const modelDir = need('model', v.model);
    const batchFile = need('batch', v.batch);
    const out = resolve(need('out', v.out));
    const grads = (v.grads ?? 'none') as Grads;
    if (!GRADS.includes(grads)) throw new CliError(`forward: --grads must be one of ${GRADS.join(', ')}, got '${v.grads}'`);
    if (grads === 'lora' && !v.adapter) throw new CliError('forward: --grads lora needs --adapter DIR (there are no LoRA parameters without one)');
    const precision = precisionFlag('forward', v.precision) ?? 'f32';
    if (precision === 'mixed' && grads === 'base') throw new CliError('forward: --grads base needs --precision f32 (f16 weights are frozen: they get no gradient)');
    const logitRows = v['logit-rows'] === undefined ? undefined : num('forward', 'logit-rows', v['logit-rows'], 0, { int: true, min: 1 });
    for (const [flag, dir] of [['model', modelDir], ['adapter', v.adapter]] as const) {
      if (dir !== undefined && !(existsSync(dir) && statSync(dir).isDirectory())) throw new CliError(`forward: --${flag} ${dir} is not a directory`);
    }
    if (!existsSync(batchFile)) throw new CliError(`forward: --batch ${batchFile} does not exist`);
    if (!existsSync(dirname(out))) throw new CliError(`forward: --out ${out}: directory ${dirname(out)} does not exist`);

    // the GPU stack only once the flags have passed
    const { init, dispose } = await import('@dawngrad/tensor');
    const { loadConfig } = await import('@dawngrad/model');
    const batch = await readBatch(batchFile, loadConfig(join(modelDir, 'config.json')).vocabSize);
    (await import('../tuning.ts')).dawnTogglesFor(precision);
    await init();
    try {
      const t0 = performance.now();
      const r = await runForward(modelDir, v.adapter, batch, grads, logitRows, precision);
      const { writeSafetensors } = await import('@dawngrad/model');
      await writeSafetensors(out, r.tensors);
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      const nGrads = Object.keys(r.tensors).length - 2;
      console.log(`forward: [${batch.B}, ${batch.T}] loss ${r.loss.toPrecision(7)}${nGrads ? `, ${nGrads} gradients` : ''} -> ${out} (${secs} s)`);
      return 0;
    } finally {
      dispose();
    }
  },
};

interface BatchOnHost {
  B: number;
  T: number;
  inputIds: Int32Array;
  attentionMask: Int32Array;
  labels: Int32Array;
}

/** Read and check the three [B, T] integer tensors; ids must be tokens of the model's vocabulary. */
async function readBatch(file: string, V: number): Promise<BatchOnHost> {
  const { SafetensorsFile, IGNORE_INDEX } = await import('@dawngrad/model');
  const st = await SafetensorsFile.open(file);
  try {
    const got: Record<string, { shape: number[]; data: Int32Array }> = {};
    for (const key of BATCH_KEYS) {
      if (!st.has(key)) throw new Error(`${file}: missing tensor "${key}" (a batch holds ${BATCH_KEYS.join(', ')})`);
      const t = await st.readTensor(key);
      if (!(t.data instanceof Int32Array)) throw new Error(`${file}: "${key}" must be an integer tensor, got ${t.dtype}`);
      if (t.shape.length !== 2) throw new Error(`${file}: "${key}" must be [B, T], got [${t.shape.join(', ')}]`);
      got[key] = { shape: t.shape, data: t.data };
    }
    const [B, T] = got.input_ids!.shape as [number, number];
    for (const key of BATCH_KEYS) {
      const s = got[key]!.shape;
      if (s[0] !== B || s[1] !== T) throw new Error(`${file}: "${key}" is [${s.join(', ')}], input_ids is [${B}, ${T}]`);
    }
    const bad = (key: string, ok: (x: number) => boolean) => {
      const i = got[key]!.data.findIndex((x) => !ok(x));
      if (i >= 0) throw new Error(`${file}: "${key}" holds ${got[key]!.data[i]} at [${Math.floor(i / T)}, ${i % T}], not ${key === 'attention_mask' ? '0 or 1' : `a token id below ${V}`}`);
    };
    bad('input_ids', (x) => x >= 0 && x < V);
    bad('attention_mask', (x) => x === 0 || x === 1);
    bad('labels', (x) => x === IGNORE_INDEX || (x >= 0 && x < V));
    return { B, T, inputIds: got.input_ids!.data, attentionMask: got.attention_mask!.data, labels: got.labels!.data };
  } finally {
    await st.close();
  }
}

/** The forward (+ backward) on the GPU -> the tensors to write and the loss. */
async function runForward(modelDir: string, adapterDir: string | undefined, b: BatchOnHost, grads: Grads, logitRows: number | undefined, precision: 'f32' | 'mixed') {
  const { Tensor, rt } = await import('@dawngrad/tensor');
  const { noGrad, backward, slice, scale, add } = await import('@dawngrad/autograd');
  type Var = import('@dawngrad/autograd').Var;
  const { loadModel, shiftedTargetsFull, causalLmLoss } = await import('@dawngrad/model');
  const { loadAdapter } = await import('@dawngrad/lora');
  type TensorToWrite = import('@dawngrad/model').TensorToWrite;

  const model = await loadModel(modelDir, { precision });
  const lora = adapterDir ? (await loadAdapter(adapterDir, model)).eval() : null; // eval: no dropout
  try {
    if (grads === 'base') model.requiresGrad(true);
    const { B, T } = b;
    const V = model.config.vocabSize;
    const N = B * T;
    // rows per chunk: the [rows, V] f32 logits must fit one binding
    const binding = rt().ctx.limits.maxStorageBufferBindingSize;
    const fit = Math.floor(binding / (V * 4));
    if (fit < 1) throw new Error(`forward: one row of ${V} logits (${V * 4} bytes) exceeds the adapter's maxStorageBufferBindingSize (${binding} bytes)`);
    const rows = Math.min(N, logitRows ?? fit, fit);
    const targets = shiftedTargetsFull(b.labels, B, T);
    const labelled = targets.filter((y) => y >= 0).length;
    // encode the whole pass first (noGrad must wrap synchronous code), then read the chunks back
    const pass = () => {
      const batch = { inputIds: Tensor.fromArray(b.inputIds, [B, T], 'i32'), attentionMask: Tensor.fromArray(b.attentionMask, [B, T], 'i32') };
      const h = model.hiddenStates(batch); // [B*T, C]
      const chunks: { r0: number; logits: Var }[] = [];
      let loss: Var | null = null;
      for (let r0 = 0; r0 < N; r0 += rows) {
        const r1 = Math.min(N, r0 + rows);
        const logits = model.lmHead.forward(r1 - r0 === N ? h : slice(h, [r0, 0], [r1, h.shape[1]!])); // [r1 - r0, V]
        const t = targets.subarray(r0, r1);
        const n = t.filter((y) => y >= 0).length;
        // a chunk's mean over its labelled rows, weighted by its share of all labelled rows
        const part = r1 - r0 === N ? causalLmLoss(logits, t) : scale(causalLmLoss(logits, t), labelled ? n / labelled : 0);
        loss = loss ? add(loss, part) : part;
        chunks.push({ r0, logits });
      }
      return { chunks, loss: loss! };
    };
    const { chunks, loss } = grads === 'none' ? noGrad(pass) : pass();
    const logits = new Float32Array(N * V);
    for (const c of chunks) {
      logits.set((await c.logits.data.toArray()) as Float32Array, c.r0 * V);
      if (grads === 'none') c.logits.data.dispose(); // no backward will read it
    }
    const lossValue = await loss.data.item();
    const tensors: Record<string, TensorToWrite> = {
      logits: { dtype: 'F32', shape: [B, T, V], data: logits },
      loss: { dtype: 'F32', shape: [1], data: [lossValue] },
    };
    if (grads !== 'none') {
      backward(loss);
      const params = grads === 'lora' ? lora!.namedParameters() : model.namedParameters();
      for (const { name, param } of params) {
        const g = param.grad ? ((await param.grad.toArray()) as Float32Array) : new Float32Array(param.size); // unreached: zero
        tensors[`grad.${name}`] = { dtype: 'F32', shape: [...param.shape], data: g };
      }
    }
    return { tensors, loss: lossValue };
  } finally {
    if (lora) lora.dispose();
    else model.dispose();
  }
}
