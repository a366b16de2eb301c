// Elementwise ops: z = a ∘ b for ∘ in + − · /, and y = f(x) for f in −, exp, log, √, 1/√, xᶜ, σ, silu, c·x.
// Backward: dz/da and dz/db times g (each op's `rule`), and g·f′(x) written with x or y, whichever is cheaper. Binary
// ops broadcast like NumPy, so their backward sums the gradient back over the broadcast dims (`sumTo`).
// No kernels of their own: forward and backward are the tensor package's elementwise kernels, one pass each.
import * as tensor from '@dawngrad/tensor';
import { ref, type Tensor } from '@dawngrad/tensor';
import { defineOp, apply, type F64 } from '../op.ts';
import type { Var } from '../var.ts';

type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

// ---- binary: z = a ∘ b -------------------------------------------------------------------------------------------

function binaryOp(op: BinaryOp, rule: string, grads: (g: Tensor, a: Tensor, b: Tensor) => [() => Tensor, () => Tensor],
  cpuGrads: (g: F64, a: F64, b: F64) => [F64, F64]) {
  return defineOp<null>({
    name: op,
    rule,
    forward: ([a, b]) => tensor.binary(op, a!, b!),
    backward(g, { inputs: [a, b], needs }) {
      const [ga, gb] = grads(g, a!, b!);
      return [needs[0] ? fitTo(ga(), a!.shape) : null, needs[1] ? fitTo(gb(), b!.shape) : null];
    },
    cpu: {
      forward: ([a, b]) => ref.binary(op, a!, b!),
      backward(g, { inputs: [a, b] }) {
        const [ga, gb] = cpuGrads(g, a!, b!);
        return [ref.sumTo(ga, a!.shape), ref.sumTo(gb, b!.shape)];
      },
    },
  });
}

/** Sum a gradient back over broadcast dims — or pass it through when nothing was broadcast (no copy). */
function fitTo(g: Tensor, shape: readonly number[]): Tensor {
  return g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i]) ? g : tensor.sumTo(g, shape);
}

const cmul = (x: F64, y: F64) => ref.binary('mul', x, y);
const cdiv = (x: F64, y: F64) => ref.binary('div', x, y);
const cneg = (x: F64) => ref.unary('neg', x);

export const ADD = binaryOp('add', 'da = g, db = g', (g) => [() => g, () => g], (g) => [g, g]);
export const SUB = binaryOp('sub', 'da = g, db = −g', (g) => [() => g, () => tensor.unary('neg', g)], (g) => [g, cneg(g)]);
export const MUL = binaryOp('mul', 'da = g·b, db = g·a', (g, a, b) => [() => tensor.mul(g, b), () => tensor.mul(g, a)],
  (g, a, b) => [cmul(g, b), cmul(g, a)]);
export const DIV = binaryOp('div', 'da = g/b, db = −g·a/b²',
  (g, a, b) => [() => tensor.div(g, b), () => tensor.unary('neg', tensor.div(tensor.mul(g, a), tensor.mul(b, b)))],
  (g, a, b) => [cdiv(g, b), cneg(cdiv(cmul(g, a), cmul(b, b)))]);

export const add = (a: Var, b: Var) => apply(ADD, [a, b], null);
export const sub = (a: Var, b: Var) => apply(SUB, [a, b], null);
export const mul = (a: Var, b: Var) => apply(MUL, [a, b], null);
export const div = (a: Var, b: Var) => apply(DIV, [a, b], null);

// ---- unary: y = f(x); the backward is g · f'(x), written with x or y, whichever is cheaper ---------------------------

function unaryOp(
  name: string,
  rule: string,
  fwd: (x: Tensor, c: number) => Tensor,
  dfdx: (x: Tensor, y: Tensor, c: number) => Tensor,
  cpuFwd: (x: number, c: number) => number,
  cpuDfdx: (x: number, y: number, c: number) => number,
  /** the whole backward when it is cheaper than g · f'(x) (e.g. a scale: one kernel instead of a fill and a multiply) */
  direct?: (g: Tensor, c: number) => Tensor,
) {
  return defineOp<number>({
    name,
    rule,
    forward: ([x], c) => fwd(x!, c),
    backward: (g, { inputs: [x], out: y, attrs: c }) => [direct ? direct(g, c) : tensor.mul(g, dfdx(x!, y, c))],
    cpu: {
      forward: ([x], c) => ({ shape: [...x!.shape], data: x!.data.map((v) => cpuFwd(v, c)) }),
      backward: (g, { inputs: [x], out: y, attrs: c }) => [{ shape: [...x!.shape], data: g.data.map((gv, i) => gv * cpuDfdx(x!.data[i]!, y.data[i]!, c)) }],
    },
  });
}

const u = tensor.unary;
export const NEG = unaryOp('neg', 'dx = −g', (x) => u('neg', x), (x) => tensor.fill(x.shape, -1), (x) => -x, () => -1, (g) => u('neg', g));
export const EXP = unaryOp('exp', 'dx = g·y (reuses the output)', (x) => u('exp', x), (_x, y) => y, Math.exp, (_x, y) => y);
export const LOG = unaryOp('log', 'dx = g/x', (x) => u('log', x), (x) => u('recip', x), Math.log, (x) => 1 / x);
export const SQRT = unaryOp('sqrt', 'dx = g/(2y)', (x) => u('sqrt', x), (_x, y) => u('recip', u('mulScalar', y, 2)),
  Math.sqrt, (_x, y) => 1 / (2 * y));
export const RSQRT = unaryOp('rsqrt', 'dx = −g·y³/2', (x) => u('rsqrt', x), (_x, y) => u('mulScalar', u('powScalar', y, 3), -0.5),
  (x) => 1 / Math.sqrt(x), (_x, y) => -0.5 * y ** 3);
export const POW = unaryOp('pow', 'dx = g·c·xᶜ⁻¹', (x, c) => u('powScalar', x, c),
  (x, _y, c) => u('mulScalar', u('powScalar', x, c - 1), c), (x, c) => x ** c, (x, _y, c) => c * x ** (c - 1));
export const SIGMOID = unaryOp('sigmoid', 'dx = g·y·(1 − y)', (x) => u('sigmoid', x),
  (_x, y) => tensor.mul(y, u('addScalar', u('neg', y), 1)), (x) => 1 / (1 + Math.exp(-x)), (_x, y) => y * (1 - y));
export const SILU = unaryOp('silu', 'dx = g·s·(1 + x·(1 − s)), s = σ(x)', (x) => u('silu', x),
  (x) => {
    const s = u('sigmoid', x);
    return tensor.mul(s, u('addScalar', tensor.mul(x, u('addScalar', u('neg', s), 1)), 1));
  },
  (x) => x / (1 + Math.exp(-x)),
  (x) => {
    const s = 1 / (1 + Math.exp(-x));
    return s * (1 + x * (1 - s));
  });
export const SCALE = unaryOp('scale', 'dx = g·c', (x, c) => u('mulScalar', x, c), (x, _y, c) => tensor.fill(x.shape, c),
  (x, c) => x * c, (_x, _y, c) => c, (g, c) => u('mulScalar', g, c));

export const neg = (x: Var) => apply(NEG, [x], 0);
export const exp = (x: Var) => apply(EXP, [x], 0);
export const log = (x: Var) => apply(LOG, [x], 0);
export const sqrt = (x: Var) => apply(SQRT, [x], 0);
export const rsqrt = (x: Var) => apply(RSQRT, [x], 0);
export const pow = (x: Var, c: number) => apply(POW, [x], c);
export const sigmoid = (x: Var) => apply(SIGMOID, [x], 0);
export const silu = (x: Var) => apply(SILU, [x], 0);
/** y = c·x for a constant c */
export const scale = (x: Var, c: number) => apply(SCALE, [x], c);
