// Writing a kernel: one declaration of its parameters and bindings, from which come both the WGSL header (the uniform
// `struct P`, the `@binding` lines, the entry point with its builtins) and the host side (uniform types, binding order).
// A kernel can then not disagree with its own struct: a parameter or buffer the call leaves out is an error, not a
// silent 0.
//
//   const SCALE = defineKernel({
//     name: 'scale',
//     params: { n: 'u32', c: 'f32' },
//     bindings: { X: 'f32', Y: 'rw f32' },
//     body: `${FLAT_INDEX} if (i < p.n) { Y[i] = p.c * X[i]; }`,
//   });
//   SCALE.run({ X: x, Y: y }, { n: x.size, c: 2 }, grid(Math.ceil(x.size / WG)));
import { rt } from './runtime.ts';
import type { Tensor } from './tensor.ts';

/** The default workgroup size of 1-D kernels. */
export const WG = 256;

/** The flat index `i` of this invocation in a 1-D grid of WG-wide workgroups split by runtime.grid(). */
export const FLAT_INDEX = `let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;`;

/** FLAT_INDEX for workgroups of `size` invocations (workgroupSize [size]), into the variable `name`. */
export function flatIndex(size: number, name = 'i'): string {
  return `let ${name} = (wid.y * nwg.x + wid.x) * ${size}u + lid.x;`;
}

/** [0, 1, …, n − 1]: the indices WGSL generators unroll over (`range(4).map((c) => …)`). */
export const range = (n: number): number[] => [...Array(n).keys()];

/**
 * The WGSL statement that stores alpha·v at C[i] — or adds it to what C holds there when the call accumulates: the
 * epilogue of kernels with uniforms `alpha: f32` and `acc: u32` (0: overwrite) and an output binding `C`. `i` and `v`
 * are WGSL expressions; `v` may be a scalar or a vec4 matching C's element type.
 */
export const storeC = (i: string, v: string): string => `if (p.acc != 0u) { C[${i}] += p.alpha * ${v}; } else { C[${i}] = p.alpha * ${v}; }`;

/** −∞ for running maxima: the most negative finite f32 (a literal inf is not valid WGSL). */
export const NEG_INF = '-3.4028234663852886e38';

/**
 * Round f32 values to f16 precision (10 mantissa bits, nearest-even) in f32 registers: f16(x) for every normal f16
 * magnitude, without the f32 → f16 → f32 round trip that shader compilers may fold away (lavapipe's does). Below f16's
 * normal range (6.1e-5) it keeps more bits than f16 would; above 65504 it stays finite. WGSL functions round16(vec4)
 * and round16s(f32).
 */
export const ROUND_F16 = `fn round16(x: vec4<f32>) -> vec4<f32> {
  let b = bitcast<vec4<u32>>(x);
  return bitcast<vec4<f32>>((b + vec4<u32>(0x0FFFu) + ((b >> vec4<u32>(13u)) & vec4<u32>(1u))) & vec4<u32>(0xFFFFE000u));
}
fn round16s(x: f32) -> f32 { return round16(vec4<f32>(x)).x; }`;

export type ParamType = 'u32' | 'i32' | 'f32';

/**
 * A binding: its element type, optionally prefixed by its access: 'f32' (read-only storage), 'rw vec4<f32>' (read-write
 * storage), 'uniform array<vec4<f32>, 4096>' (a uniform block, declared as written).
 */
export type BindingDecl = string;

export interface KernelSpec<P extends Record<string, ParamType>, B extends Record<string, BindingDecl>> {
  /** the pipeline-cache key: the name plus everything the WGSL specialises on (dtype, tile shape, ...) */
  name: string;
  /** the uniform parameters, in struct order; read in WGSL as p.<name> */
  params?: P;
  /** the buffers, in @binding order from 1 (binding 0 is the uniform struct) */
  bindings: B;
  /** default [WG] */
  workgroupSize?: [number, number?, number?];
  /** WGSL extensions: 'f16', 'subgroups', 'chromium_experimental_subgroup_matrix' */
  enable?: string[];
  /** global directives after the enables, e.g. 'diagnostic(off, …);' */
  directives?: string[];
  /** declarations before the entry point: helper functions, var<workgroup> arrays, constants */
  decls?: string;
  /** the entry point's body. In scope: p (params), the bindings, wid / lid / nwg (vec3<u32>), li (local index), and with
   * 'subgroups' enabled lane (subgroup_invocation_id) and sgSize (subgroup_size). FLAT_INDEX gives the 1-D index. */
  body: string;
}

type Buffer = Tensor | GPUBuffer | GPUBufferBinding;

export interface KernelDef<P extends Record<string, ParamType>, B extends Record<string, BindingDecl>> {
  readonly key: string;
  wgsl(): string;
  /** Encode one dispatch into the current step. */
  run(buffers: { [K in keyof B]: Buffer }, params: { [K in keyof P]: number }, workgroups: [number, number?, number?]): void;
}

function parseBinding(name: string, decl: string, index: number): string {
  const [first, ...rest] = decl.trim().split(/\s+/);
  if (first === 'uniform') return `@group(0) @binding(${index}) var<uniform> ${name}: ${rest.join(' ')};`;
  const [access, type] = first === 'rw' ? ['read_write', rest.join(' ')] : ['read', decl.trim()];
  return `@group(0) @binding(${index}) var<storage, ${access}> ${name}: array<${type}>;`;
}

/** A kernel declaration without its name: what a template builds for one specialisation (see kernelFor). */
export type KernelBody = Omit<KernelSpec<Record<string, ParamType>, Record<string, BindingDecl>>, 'name'>;

const specialised = new Map<string, unknown>();

/**
 * The kernel of a template for one specialisation, built on first use: `name` holds everything the WGSL depends on
 * (the same name must always build the same kernel). Templates call this instead of keeping a cache each.
 */
export function kernelFor<P extends Record<string, ParamType>, B extends Record<string, BindingDecl>>(name: string, spec: () => Omit<KernelSpec<P, B>, 'name'>): KernelDef<P, B> {
  let k = specialised.get(name) as KernelDef<P, B> | undefined;
  if (!k) specialised.set(name, (k = defineKernel({ ...spec(), name })));
  return k;
}

/** Build a kernel from one declaration. Cheap: the WGSL is assembled only when the pipeline is first compiled. */
export function defineKernel<P extends Record<string, ParamType> = Record<string, never>, B extends Record<string, BindingDecl> = Record<string, never>>(
  spec: KernelSpec<P, B>,
): KernelDef<P, B> {
  const paramNames = Object.keys(spec.params ?? {});
  const types = paramNames.map((k) => spec.params![k]![0]!).join(''); // 'u' | 'i' | 'f', the runtime's uniform writer
  const bindingNames = Object.keys(spec.bindings);
  const [x, y = 1, z = 1] = spec.workgroupSize ?? [WG];
  const subgroups = spec.enable?.includes('subgroups') ?? false;
  const wgsl = () => {
    const enables = [...(spec.enable ?? []).map((e) => `enable ${e};`), ...(spec.directives ?? [])].join('\n');
    const struct = paramNames.length
      ? `struct Params { ${paramNames.map((k) => `${k}: ${spec.params![k]}`).join(', ')} }\n@group(0) @binding(0) var<uniform> p: Params;`
      : '';
    const binds = bindingNames.map((k, i) => parseBinding(k, spec.bindings[k]!, i + 1)).join('\n');
    const sg = subgroups ? ', @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgSize: u32' : '';
    return `${enables}
${struct}
${binds}
${spec.decls ?? ''}
@compute @workgroup_size(${x}, ${y}, ${z})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>${sg}) {
${spec.body}
}`;
  };
  const access = bindingNames.map((k) => {
    const first = spec.bindings[k]!.trim().split(/\s+/)[0];
    return first === 'uniform' ? 'uniform' : first === 'rw' ? 'rw' : 'read';
  }) as ('read' | 'rw' | 'uniform')[];
  const kernel = { key: spec.name, wgsl, bindings: access, hasParams: paramNames.length > 0 };
  return {
    key: spec.name,
    wgsl,
    run(buffers, params, workgroups) {
      const values = paramNames.map((k) => {
        const v = (params as Record<string, number>)[k];
        if (typeof v !== 'number') throw new Error(`${spec.name}: parameter ${k} not given`);
        return v;
      });
      const bufs = bindingNames.map((k) => {
        const b = (buffers as Record<string, Buffer>)[k];
        if (!b) throw new Error(`${spec.name}: buffer ${k} not given`);
        return toBinding(b);
      });
      rt().dispatch({ kernel, buffers: bufs, params: paramNames.length ? values : undefined, types, workgroups });
    },
  };
}

function toBinding(b: Buffer): GPUBuffer | GPUBufferBinding {
  if ('binding' in b && typeof b.binding === 'object') return (b as Tensor).binding;
  return b as GPUBuffer | GPUBufferBinding;
}

/**
 * A workgroup tree reduction over `size` slots (a power of two) of workgroup memory, every invocation taking part:
 * `index` is this invocation's slot number among the `size` (e.g. `li`, or a lane within a row), and `step(s)` the WGSL
 * statement that folds slot index + s into slot index — e.g. (s) => `part[li] += part[li + ${s}];`. Starts with a
 * barrier (the caller has just written its own slot) and ends with one, so slot 0 then holds the result.
 */
export function treeReduce(size: number, index: string, step: (s: string) => string): string {
  if (size & (size - 1)) throw new Error(`treeReduce: size ${size} is not a power of two`);
  return `workgroupBarrier();
  for (var s = ${size / 2}u; s > 0u; s >>= 1u) {
    if (${index} < s) { ${step('s')} }
    workgroupBarrier();
  }`;
}
