// LoRA on the model's linear layers: y = W·x + scale · B·(A·dropout(x)), with W frozen and only A: [r, in] and
// B: [out, r] trained. The update goes through the r-wide bottleneck inside the layer's own product (the
// linearLowRank op); B·A ([out, in], the size of W) is formed only when merging. Every factor lives in one packed
// buffer, and so does every gradient: the optimiser updates them all with one kernel, and one clear zeroes them.
//
// Parameter names are PEFT's: base_model.model.<module path>.lora_A.default.weight, in module order (the order PEFT's
// named_parameters() lists them), so gradients, optimiser state and saved files line up with Hugging Face's.
import { Tensor, keep } from '@dawngrad/tensor';
import { Var, param, dropout } from '@dawngrad/autograd';
import type { LowRankUpdate } from '@dawngrad/model';
import type { Batch, ForwardOptions, Linear, MistralForCausalLM, NamedParam } from '@dawngrad/model';
import { loraConfig, loraScale, selectTargets, type LoraConfig, type LoraConfigInput } from './config.ts';
import { initLoraFactors, mulberry32 } from './init.ts';
import { mergeLayer, unmergeLayer } from './merge.ts';

/** PEFT's prefix for a causal-LM adapter's tensors (PeftModelForCausalLM → LoraModel → the transformers model). */
export const PEFT_PREFIX = 'base_model.model.';
/** The adapter name PEFT puts in parameter names (and leaves out of saved keys). */
export const ADAPTER_NAME = 'default';

/** PEFT's in-memory parameter name, e.g. base_model.model.model.layers.0.self_attn.k_proj.lora_A.default.weight. */
export function peftParamName(path: string, factor: 'A' | 'B'): string {
  return `${PEFT_PREFIX}${path}.lora_${factor}.${ADAPTER_NAME}.weight`;
}

/** PEFT's saved key: the same without the adapter name (base_model.model.<path>.lora_A.weight). */
export function peftSavedKey(path: string, factor: 'A' | 'B'): string {
  return `${PEFT_PREFIX}${path}.lora_${factor}.weight`;
}

/** One adapted linear layer: its factors, its scale, and the update plugged into linear.lowRank. */
export class LoraLayer {
  /** true while B·A is folded into W (then the adapter is unplugged so it is not added twice) */
  merged = false;
  private calls = 0;
  readonly update: LowRankUpdate;

  constructor(
    readonly linear: Linear,
    readonly A: Var, // [r, in]
    readonly B: Var, // [out, r]
    readonly scale: number,
    readonly dropoutP: number,
    /** per-layer base seed of the dropout masks; each call gets a fresh one */
    private readonly dropoutSeed: number,
    private readonly owner: { training: boolean },
  ) {
    this.update = { A, B, scale, input: (x) => this.input(x) };
  }

  /** What the update's path sees: x after dropout while training, else x itself. */
  input(x: Var): Var {
    const training = this.owner.training && this.dropoutP > 0;
    return training ? dropout(x, this.dropoutP, { seed: (this.dropoutSeed + this.calls++ * 0x9e3779b9) >>> 0 }) : x;
  }

  get path(): string {
    return this.linear.path;
  }
}

/** A base model with LoRA adapters plugged into some of its linear layers. */
export class LoraModel {
  /** dropout is active only while training (the default after inject) */
  training = true;
  readonly layers: LoraLayer[] = [];
  /** every A and B, packed in PEFT's order into one buffer (views of it are the parameters' data) */
  packedParams: Tensor | null = null;
  /** their gradients, packed the same way once packGradients() is called */
  packedGrads: Tensor | null = null;

  constructor(
    readonly base: MistralForCausalLM,
    readonly config: LoraConfig,
    /** target_modules as resolved against this model (all-linear expanded to names): what gets saved */
    readonly targetModules: string[] | string,
  ) {}

  get scale(): number {
    return loraScale(this.config);
  }

  /** The LoRA parameters under PEFT's names, in PEFT's order (module order; A before B). */
  namedParameters(): NamedParam[] {
    return this.layers.flatMap((l) => [
      { name: peftParamName(l.path, 'A'), param: l.A },
      { name: peftParamName(l.path, 'B'), param: l.B },
    ]);
  }

  parameters(): Var[] {
    return this.namedParameters().map((p) => p.param);
  }

  /**
   * Give every factor a gradient accumulator inside one packed buffer (zeros), so backward() adds into it in place and an
   * optimiser can update every parameter with one kernel over packedParams/packedGrads. Idempotent.
   */
  packGradients(): Tensor {
    if (this.packedGrads) return this.packedGrads;
    const params = this.parameters();
    const { views, whole } = Tensor.packed(params.map((p) => p.shape));
    params.forEach((p, i) => {
      p.zeroGrad();
      p.grad = keep(views[i]!);
    });
    return (this.packedGrads = keep(whole));
  }

  /** The packed parameters and gradients, for AdamW's packed step (allocates the gradients' buffer on first use). */
  packed(): { params: Tensor; grads: Tensor } {
    if (!this.packedParams) throw new Error('LoraModel.packed: the adapters were unloaded');
    return { params: this.packedParams, grads: this.packGradients() };
  }

  /** Zero the gradients: one clear of the packed buffer, or free them when they are not packed. */
  zeroGrad(): void {
    if (this.packedGrads) this.packedGrads.clear();
    else for (const p of this.parameters()) p.zeroGrad();
  }

  /** Number of trainable values (Σ r·(in + out)). */
  numTrainable(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  train(on = true): this {
    this.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  // inputIds: [B, T] -> logits, as base.forward (the adapters are inside its linear layers)
  forward(batch: Batch, opts?: ForwardOptions): Var {
    return this.base.forward(batch, opts);
  }

  get merged(): boolean {
    return this.layers.length > 0 && this.layers.every((l) => l.merged);
  }

  /** W += scale·B·A for every adapted layer, on the GPU; the adapters are unplugged so the forward uses W alone. */
  merge(): void {
    const half = this.layers.find((l) => l.linear.weight.data.dtype === 'f16');
    if (half) throw new Error(`merge: ${half.path}'s weight is stored in f16 (--precision mixed): merge into an f32 model (load it with precision 'f32')`);
    if (this.base.config.tieWordEmbeddings && this.layers.some((l) => l.path === 'lm_head')) {
      throw new Error('merge: lm_head shares its weight with the embedding (tie_word_embeddings); merging would change the embedding too');
    }
    for (const l of this.layers) mergeLayer(l);
  }

  /** W −= scale·B·A, undoing merge(), and plug the adapters back in. */
  unmerge(): void {
    for (const l of this.layers) unmergeLayer(l);
  }

  /** Remove the adapters from the base model (merged weights stay merged) and free A and B. Returns the base model. */
  unload(): MistralForCausalLM {
    for (const l of this.layers) {
      if (l.linear.lowRank === l.update) l.linear.lowRank = null;
      l.A.zeroGrad();
      l.B.zeroGrad();
      l.A.data.dispose();
      l.B.data.dispose();
    }
    this.packedParams?.dispose();
    this.packedGrads?.dispose();
    this.packedParams = this.packedGrads = null;
    this.layers.length = 0;
    return this.base;
  }

  /** Free the adapters' memory and the base model's. */
  dispose(): void {
    this.unload().dispose();
  }
}

/** Host values for the factors of one layer (used by loading, where they come from a file). */
export interface LoraFactors {
  a: Float32Array; // [r, in]
  b: Float32Array; // [out, r]
}

/**
 * Plug LoRA adapters into the targeted linear layers of `model` and freeze every base parameter. The factors are
 * initialised per config.init_lora_weights from config.seed, unless `factors` supplies them by module path.
 */
export function inject(model: MistralForCausalLM, input: LoraConfig | LoraConfigInput, factors?: Map<string, LoraFactors>): LoraModel {
  const config = loraConfig(input as LoraConfigInput);
  const linears = model.linears();
  const { targets, target_modules } = selectTargets(config, linears.map((l) => l.path));
  for (const l of linears) {
    if (targets.includes(l.path) && l.lowRank) throw new Error(`inject: ${l.path} already has an adapter`);
  }
  model.requiresGrad(false);
  const lora = new LoraModel(model, config, target_modules);
  const rng = mulberry32(config.seed);
  const s = loraScale(config);
  const { r } = config;
  // factors in module order (the rng stream follows it), then one packed buffer holding A₀ B₀ A₁ B₁ … in that order
  const chosen = [...linears.entries()].filter(([, linear]) => targets.includes(linear.path));
  const factorsOf = chosen.map(([, linear]) => {
    const [outF, inF] = [linear.outFeatures, linear.inFeatures];
    const f = factors?.get(linear.path) ?? initLoraFactors(config.init_lora_weights, r, inF, outF, rng);
    if (f.a.length !== r * inF || f.b.length !== outF * r) throw new Error(`inject: factors for ${linear.path} do not fit [${r}, ${inF}] and [${outF}, ${r}]`);
    return f;
  });
  const { views, whole } = Tensor.packed(chosen.flatMap(([, l]) => [[r, l.inFeatures], [l.outFeatures, r]]));
  lora.packedParams = keep(whole);
  chosen.forEach(([k, linear], i) => {
    const [a, b] = [views[2 * i]!, views[2 * i + 1]!];
    a.write(factorsOf[i]!.a);
    b.write(factorsOf[i]!.b);
    const A = param(a, peftParamName(linear.path, 'A'));
    const B = param(b, peftParamName(linear.path, 'B'));
    const layer = new LoraLayer(linear, A, B, s, config.lora_dropout, (Math.imul(config.seed >>> 0, 1000003) + Math.imul(k, 7919)) >>> 0, lora);
    linear.lowRank = layer.update;
    lora.layers.push(layer);
  });
  return lora;
}
