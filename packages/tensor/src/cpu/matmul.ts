// Float64 twin of kernels/matmul.ts: C = alpha·op(A)·op(B) (+ C0), batched, plain triple loop.
import { type F64, empty } from './array.ts';

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  accumulate?: F64;
  alpha?: number;
}

export function matmul(a: F64, b: F64, o: MatmulRefOptions = {}): F64 {
  const ar = a.shape.length;
  const br = b.shape.length;
  const [M, K] = o.transA ? [a.shape[ar - 1]!, a.shape[ar - 2]!] : [a.shape[ar - 2]!, a.shape[ar - 1]!];
  const N = o.transB ? b.shape[br - 2]! : b.shape[br - 1]!;
  const batch = ar > 2 ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  const nb = batch.reduce((x, y) => x * y, 1);
  const c = empty([...batch, M, N]);
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
