// Var: a tensor on the tape. Leaves are parameters or inputs; every other Var remembers the op that made it, its inputs,
// and the closure that turns the gradient of its output into gradients of those inputs.
import { Tensor, keep, type Shape } from '@dawngrad/tensor';

/**
 * Given dL/dout, return dL/dinput for each input (null where `needs[i]` is false: no work for frozen inputs). `into[i]`
 * is input i's leaf `.grad` when it has one: returning that very tensor says the gradient was added into it in place.
 */
export type BackwardFn = (g: Tensor, needs: boolean[], into: (Tensor | null)[]) => (Tensor | null)[];

export class Var {
  /** dL/dthis after backward(); accumulates across backward() calls until zeroGrad(). Leaves only. */
  grad: Tensor | null = null;
  /** parents and backward are dropped after backward() so the graph can be collected */
  parents: Var[];
  backwardFn: BackwardFn | null;
  /** tensors the op's forward kept for its backward (e.g. attention's logsumexp); freed when the graph is cut */
  saved: Tensor[] = [];

  constructor(
    public data: Tensor,
    public requiresGrad = false,
    readonly op = 'leaf',
    parents: Var[] = [],
    backwardFn: BackwardFn | null = null,
    public name?: string,
  ) {
    this.parents = parents;
    this.backwardFn = backwardFn;
  }

  get shape(): Shape {
    return this.data.shape;
  }

  get size(): number {
    return this.data.size;
  }

  get isLeaf(): boolean {
    return this.op === 'leaf';
  }

  /** The same data, cut from the graph. */
  detach(): Var {
    return new Var(this.data, false);
  }

  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  toString(): string {
    return `Var(${this.name ?? this.op}, [${this.shape.join(', ')}]${this.requiresGrad ? ', grad' : ''})`;
  }
}

/** A trainable leaf. Its data is kept out of any enclosing scope: parameters live until disposed explicitly. */
export function param(data: Tensor, name?: string): Var {
  return new Var(keep(data), true, 'leaf', [], null, name);
}

/** An input that needs no gradient. */
export function constant(data: Tensor, name?: string): Var {
  return new Var(data, false, 'leaf', [], null, name);
}

let gradEnabled = true;

/** Run fn without recording: ops inside build no graph and keep no closures. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}
