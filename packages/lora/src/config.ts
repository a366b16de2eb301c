// LoraConfig: which linear layers get an adapter, how wide, how scaled, how initialised — with Hugging Face PEFT's
// field names and semantics, so an adapter_config.json reads and writes one-to-one. Validation happens here, at the
// boundary: everything downstream trusts a config that came out of loraConfig() or parsePeftConfig().

/** PEFT's `init_lora_weights` values we implement (true = kaiming-uniform A, zero B). */
export type InitLoraWeights = boolean | 'gaussian';

export interface LoraConfig {
  /** rank of the bottleneck: A is [r, in], B is [out, r] */
  r: number;
  /** the update is scaled by lora_alpha / r (or lora_alpha / √r with use_rslora) */
  lora_alpha: number;
  /** dropout probability on the adapter's input during training, in [0, 1) */
  lora_dropout: number;
  /**
   * Which linear layers: a list of names matched against the module path exactly or as a `.name` suffix
   * (`k_proj` matches `model.layers.0.self_attn.k_proj`); a single string is a regex full-matched against the path;
   * `all-linear` (any case) means every linear layer except the output head lm_head.
   */
  target_modules: string[] | string;
  /** modules never to target, matched like target_modules (list: exact or suffix; string: regex) */
  exclude_modules: string[] | string | null;
  /** rank-stabilised LoRA: scale by lora_alpha / √r instead of lora_alpha / r */
  use_rslora: boolean;
  /** true: A ~ kaiming-uniform U(−1/√in, 1/√in), B = 0; 'gaussian': A ~ N(0, (1/r)²), B = 0; false: A and B both random */
  init_lora_weights: InitLoraWeights;
  /** only 'none' (no bias terms are trained) */
  bias: 'none';
  /** only adapt these decoder layer indices (an int means one layer); null: every layer */
  layers_to_transform: number[] | number | null;
  /** recorded in adapter_config.json; informational */
  base_model_name_or_path: string | null;
  /** seed of our PRNG for the initial A/B values (not a PEFT field; not saved) */
  seed: number;
}

/** PEFT's default targets for llama/mistral when target_modules is not given (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const DEFAULT_TARGET_MODULES = ['q_proj', 'v_proj'];

/** The shorthand for every linear layer but the output head. */
export const ALL_LINEAR = 'all-linear';

/** The output head's module path: never targeted by all-linear (PEFT excludes the output embedding). */
export const OUTPUT_HEAD = 'lm_head';

export type LoraConfigInput = Partial<Omit<LoraConfig, 'target_modules'>> & { target_modules?: string[] | string | null };

/** PEFT's defaults (r 8, alpha 8, no dropout, q/v targets) filled in, then every field validated. */
export function loraConfig(input: LoraConfigInput = {}, source = 'LoraConfig'): LoraConfig {
  const cfg: LoraConfig = {
    r: input.r ?? 8,
    lora_alpha: input.lora_alpha ?? 8,
    lora_dropout: input.lora_dropout ?? 0,
    // a list is a set in PEFT (duplicates collapse); keep the caller's order
    target_modules: Array.isArray(input.target_modules) ? [...new Set(input.target_modules)] : input.target_modules ?? [...DEFAULT_TARGET_MODULES],
    exclude_modules: input.exclude_modules ?? null,
    use_rslora: input.use_rslora ?? false,
    init_lora_weights: input.init_lora_weights ?? true,
    bias: input.bias ?? 'none',
    layers_to_transform: input.layers_to_transform ?? null,
    base_model_name_or_path: input.base_model_name_or_path ?? null,
    seed: input.seed ?? 0,
  };
  validateLoraConfig(cfg, source);
  return cfg;
}

export function validateLoraConfig(c: LoraConfig, source = 'LoraConfig'): void {
  const bad = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (!Number.isSafeInteger(c.r) || c.r <= 0) bad(`r must be a positive integer, got ${JSON.stringify(c.r)}`);
  if (typeof c.lora_alpha !== 'number' || !Number.isFinite(c.lora_alpha)) bad(`lora_alpha must be a finite number, got ${JSON.stringify(c.lora_alpha)}`);
  if (typeof c.lora_dropout !== 'number' || !(c.lora_dropout >= 0 && c.lora_dropout < 1)) {
    bad(`lora_dropout must be a number in [0, 1), got ${JSON.stringify(c.lora_dropout)}`);
  }
  checkModuleSpec(c.target_modules, 'target_modules', bad);
  if (c.exclude_modules !== null) checkModuleSpec(c.exclude_modules, 'exclude_modules', bad);
  if (typeof c.use_rslora !== 'boolean') bad(`use_rslora must be true or false, got ${JSON.stringify(c.use_rslora)}`);
  if (c.init_lora_weights !== true && c.init_lora_weights !== false && c.init_lora_weights !== 'gaussian') {
    bad(`init_lora_weights ${JSON.stringify(c.init_lora_weights)} is not supported (supported: true, false, "gaussian")`);
  }
  if (c.bias !== 'none') bad(`bias ${JSON.stringify(c.bias)} is not supported (only "none")`);
  const ltt = c.layers_to_transform;
  if (ltt !== null) {
    const list = typeof ltt === 'number' ? [ltt] : ltt;
    if (!Array.isArray(list) || list.some((i) => !Number.isSafeInteger(i) || i < 0)) {
      bad(`layers_to_transform must be a layer index or a list of them, got ${JSON.stringify(ltt)}`);
    }
    // PEFT refuses this combination too: a regex already says exactly which modules it wants
    if (typeof c.target_modules === 'string') bad(`layers_to_transform cannot be used when target_modules is a string (a regex or "${ALL_LINEAR}")`);
  }
  if (c.base_model_name_or_path !== null && typeof c.base_model_name_or_path !== 'string') {
    bad(`base_model_name_or_path must be a string or null, got ${JSON.stringify(c.base_model_name_or_path)}`);
  }
  if (!Number.isSafeInteger(c.seed)) bad(`seed must be an integer, got ${JSON.stringify(c.seed)}`);
}

function checkModuleSpec(spec: unknown, field: string, bad: (msg: string) => never): void {
  if (typeof spec === 'string') {
    if (spec === '') bad(`${field} must not be empty`);
    if (spec.toLowerCase() === ALL_LINEAR) return;
    try {
      new RegExp(spec);
    } catch (e) {
      bad(`${field} ${JSON.stringify(spec)} is not a valid regular expression (${(e as Error).message})`);
    }
    return;
  }
  if (!Array.isArray(spec) || spec.length === 0 || spec.some((s) => typeof s !== 'string' || s === '')) {
    bad(`${field} must be a non-empty list of module names, a regex string or "${ALL_LINEAR}", got ${JSON.stringify(spec)}`);
  }
}

/** The scale applied to B·A·x: α/r, or α/√r for rsLoRA (which keeps the update's size steady as r grows). */
export function loraScale(c: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r;
}

// ---- which modules: PEFT's check_target_module_exists, for module paths like model.layers.3.mlp.up_proj ----

/** Python's re.fullmatch for a pattern string (JS has no fullmatch: anchor the whole alternation). */
function fullMatch(pattern: string, key: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(key);
}

/** A list matches a path exactly or as a dotted suffix; a string is a full-match regex. */
export function matchesSpec(spec: string[] | string, path: string): boolean {
  if (typeof spec === 'string') return fullMatch(spec, path);
  return spec.some((name) => path === name || path.endsWith(`.${name}`));
}

/** The decoder layer index in a path, as PEFT finds it: the number after the second-to-last dotted name before it. */
export function layerIndexOf(path: string): number | null {
  const m = /^.*\.[^.]*\.(\d+)\./.exec(path);
  return m ? Number(m[1]) : null;
}

/**
 * Whether a module path is targeted. Mirrors PEFT: exclusions first; a regex full-matches; a list entry equal to the
 * whole path matches outright (PEFT skips the layer filter in that case), a suffix match then has to pass
 * layers_to_transform.
 */
export function isTargeted(c: Pick<LoraConfig, 'target_modules' | 'exclude_modules' | 'layers_to_transform'>, path: string): boolean {
  if (c.exclude_modules !== null && matchesSpec(c.exclude_modules, path)) return false;
  const t = c.target_modules;
  if (typeof t === 'string') return fullMatch(t, path);
  if (t.includes(path)) return true;
  if (!t.some((name) => path.endsWith(`.${name}`))) return false;
  const ltt = c.layers_to_transform;
  if (ltt === null || (Array.isArray(ltt) && ltt.length === 0)) return true;
  const idx = layerIndexOf(path);
  if (idx === null) return false;
  return typeof ltt === 'number' ? idx === ltt : ltt.includes(idx);
}

/**
 * Resolve `all-linear` against the model's linear layers into the set of their last names (what PEFT does, and what it
 * saves), without the output head. Other specs are returned unchanged.
 */
export function resolveAllLinear(target: string[] | string, linearPaths: readonly string[]): string[] | string {
  if (typeof target !== 'string' || target.toLowerCase() !== ALL_LINEAR) return target;
  const names = new Set<string>();
  for (const p of linearPaths) if (p !== OUTPUT_HEAD) names.add(p.slice(p.lastIndexOf('.') + 1));
  names.delete(OUTPUT_HEAD);
  return [...names].sort();
}

/**
 * The linear layers a config selects, in model order. Each list entry (or the regex) must select at least one layer,
 * else the config is refused naming what matched nothing.
 */
export function selectTargets(c: LoraConfig, linearPaths: readonly string[], source = 'LoraConfig'): { targets: string[]; target_modules: string[] | string } {
  const target_modules = resolveAllLinear(c.target_modules, linearPaths);
  const resolved = { ...c, target_modules };
  const targets = linearPaths.filter((p) => isTargeted(resolved, p));
  // a typo check: each entry must select something before exclusions (excluding all of an entry is deliberate)
  const candidates = linearPaths.filter((p) => isTargeted({ ...resolved, exclude_modules: null }, p));
  const unmatched =
    typeof target_modules === 'string'
      ? candidates.length === 0 ? [target_modules] : []
      : target_modules.filter((name) => !candidates.some((p) => p === name || p.endsWith(`.${name}`)));
  if (unmatched.length > 0) {
    const where = c.layers_to_transform !== null ? ` in layers ${JSON.stringify(c.layers_to_transform)}` : '';
    throw new Error(
      `${source}: target_modules ${unmatched.map((u) => JSON.stringify(u)).join(', ')} match no linear layer of the model${where}` +
        ` (linear layers look like ${linearPaths[0] ?? '(none)'})`,
    );
  }
  if (targets.length === 0) throw new Error(`${source}: exclude_modules ${JSON.stringify(c.exclude_modules)} excludes every targeted layer`);
  return { targets, target_modules };
}
