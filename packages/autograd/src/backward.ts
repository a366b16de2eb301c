// Reverse mode: walk the graph from the output in reverse topological order, hand each node's gradient to its
// backward closure, accumulate what comes out into its inputs. Leaves keep their gradient (summed across calls, in
// place once a leaf has one); every other gradient is freed as soon as it has been passed on, each node's temporaries
// right after it runs, and what its forward saved for it once the graph is cut.
import { Tensor, scope, keep, add, addInto, fill, unary } from '@dawngrad/tensor';
import { Var } from './var.ts';

function topoOrder(root: Var): Var[] {
  const order: Var[] = [];
  const seen = new Set<Var>();
  // iterative DFS: deep models would overflow the JS stack with recursion
  const stack: [Var, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [v, i] = top;
    if (i < v.parents.length) {
      top[1]++;
      const p = v.parents[i]!;
      if (p.requiresGrad && !seen.has(p)) {
        seen.add(p);
        stack.push([p, 0]);
      }
    } else {
      order.push(v);
      stack.pop();
    }
  }
  return order; // parents before children
}

export interface BackwardOptions {
  /** dL/droot; default ones (root must then hold a single value) */
  seed?: Tensor;
  /** keep the graph for a second backward() (default: cut it so closures and activations can go) */
  retainGraph?: boolean;
  /**
   * Free each intermediate's value (Var.data) as soon as its own backward has run — by then every consumer's backward
   * has too — instead of when the caller's scope ends: the step's peak memory drops by the activations' share. Only
   * for callers that read no intermediate value afterwards (a training step); the root, the leaves and `keep` stay.
   */
  freeActivations?: boolean;
  /** with freeActivations: intermediates whose values the caller still reads */
  keep?: Var[];
}

export function backward(root: Var, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error('backward: the output does not require grad (no parameter reaches it)');
  if (!opts.seed && root.size !== 1) throw new Error(`backward: output has ${root.size} values; pass a seed gradient`);
  const order = topoOrder(root);
  // a non-leaf whose closure is gone was cut by an earlier backward(): going on would treat it as a leaf (its
  // inputs silently get no gradient, and its .grad is kept forever), so refuse before doing any work
  const freed = order.find((v) => !v.backwardFn && !v.isLeaf);
  if (freed) throw new Error(`backward: ${freed} was freed by an earlier backward(); pass { retainGraph: true } to that call to backward through it again`);
  // grads holds tensors this function owns: each is freed once passed on, or handed to a leaf's .grad
  const grads = new Map<Var, Tensor>();
  grads.set(root, opts.seed ? copy(opts.seed) : fill(root.shape, 1));
  for (let k = order.length - 1; k >= 0; k--) {
    const v = order[k]!;
    const g = grads.get(v);
    grads.delete(v);
    if (!g) continue; // no path from root through this node
    if (!v.backwardFn) {
      // a leaf: accumulate into .grad, which outlives any step scope
      if (v.grad) {
        addInto(v.grad, g);
        g.dispose();
      } else {
        v.grad = keep(g);
      }
      continue;
    }
    const needs = v.parents.map((p) => p.requiresGrad);
    // a leaf that already holds a .grad takes its gradient in place, so its tensor object never changes (an
    // optimiser may own it as a view into one packed buffer); the op may even do the addition itself
    const into = v.parents.map((p, i) => (needs[i] && p.isLeaf && p.grad && !p.grad.disposed ? p.grad : null));
    const pgrads = scope(() => v.backwardFn!(g, needs, into));
    // a backward may pass g straight through, or return one tensor for two inputs: first give every pending input a
    // tensor of its own (copies for repeats), then accumulate — summing frees tensors, so no input may share one
    const owned = new Set<Tensor>();
    const mine: [Var, Tensor][] = [];
    v.parents.forEach((p, i) => {
      let pg = needs[i] ? pgrads[i] : null;
      if (!pg || pg === into[i]) return; // nothing for this input, or the op already added it into the leaf's .grad
      if (into[i]) {
        addInto(into[i], pg); // pg itself is freed below
        return;
      }
      if (owned.has(pg)) pg = copy(pg);
      owned.add(pg);
      mine.push([p, pg]);
    });
    for (const [p, pg] of mine) {
      const prev = grads.get(p);
      if (prev) {
        grads.set(p, add(prev, pg));
        prev.dispose();
        pg.dispose();
      } else {
        grads.set(p, pg);
      }
    }
    for (const pg of pgrads) if (pg && !owned.has(pg) && pg !== g && !into.includes(pg)) pg.dispose();
    if (!owned.has(g)) g.dispose();
    if (!opts.retainGraph) {
      // an op whose output is one of its inputs' own tensor (an identity) shares it: that one is the input's to free
      if (opts.freeActivations && v !== root && !opts.keep?.includes(v) && !v.parents.some((p) => p.data === v.data)) v.data.dispose();
      v.parents = [];
      v.backwardFn = null;
      for (const t of v.saved) t.dispose(); // stream-ordered: the kernels encoded above still read them
      v.saved = [];
    }
  }
}

function copy(t: Tensor): Tensor {
  return unary('mulScalar', t, 1);
}

/** Zero (free) the gradients of these parameters. */
export function zeroGrad(params: Iterable<Var>): void {
  for (const p of params) p.zeroGrad();
}
