// Float64 twin of kernels/matmul.ts: C = alpha·op(A)·op(B) (+ C0), batched, a plain triple loop.
//   a: [...batch, M, K] ([...batch, K, M] with transA), b: [...batch, K, N] ([...batch, N, K] with transB),
//   out: [...batch, M, N]; an operand without batch dims is shared by every batch.
import { type F64, empty } from './array.ts';

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  /** out = accumulate + alpha·op(A)·op(B) (a new array; accumulate is not modified) */
  accumulate?: F64;
  alpha?: number;
}

export function matmul(a: F64, b: F64, o: MatmulRefOptions = {}): F64 {
  const ar = a.shape.length;
  const br = b.shape.length;
  if (ar < 2 || br < 2) throw new Error(`ref.matmul: operands need rank ≥ 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const [M, K] = o.transA ? [a.shape[ar - 1]!, a.shape[ar - 2]!] : [a.shape[ar - 2]!, a.shape[ar - 1]!];
  const [K2, N] = o.transB ? [b.shape[br - 1]!, b.shape[br - 2]!] : [b.shape[br - 2]!, b.shape[br - 1]!];
  if (K !== K2) throw new Error(`ref.matmul: inner dims differ: [${a.shape.join(', ')}] · [${b.shape.join(', ')}]`);
  const ba = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  if (ba.length && bb.length && (ba.length !== bb.length || ba.some((d, i) => d !== bb[i]))) {
    throw new Error(`ref.matmul: batch dims differ: [${ba.join(', ')}] vs [${bb.join(', ')}]`);
  }
  const batch = ba.length ? ba : bb;
  const nb = batch.reduce((x, y) => x * y, 1);
  const c = empty([...batch, M, N]);
  if (o.accumulate && o.accumulate.data.length !== c.data.length) {
    throw new Error(`ref.matmul: accumulate is [${o.accumulate.shape.join(', ')}], the product is [${c.shape.join(', ')}]`);
  }
  const alpha = o.alpha ?? 1;
  for (let t = 0; t < nb; t++) {
    const a0 = ar > 2 ? t * M * K : 0;
    const b0 = br > 2 ? t * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = o.transA ? a.data[a0 + k * M + m]! : a.data[a0 + m * K + k]!;
          const bv = o.transB ? b.data[b0 + n * K + k]! : b.data[b0 + k * N + n]!;
          s += av * bv;
        }
        const idx = t * M * N + m * N + n;
        c.data[idx] = alpha * s + (o.accumulate ? o.accumulate.data[idx]! : 0);
      }
    }
  }
  return c;
}
