// Peer: a plain JavaScript matmul on Float32Arrays (the i-k-j loop order, so the inner loop walks rows of B and C).
// It is the "no library at all" baseline; the bench runs it only at small sizes.

/** c[M, N] = a[M, K] · b[K, N], all row-major and contiguous. */
export function matmulJs(a: Float32Array, b: Float32Array, M: number, N: number, K: number, c = new Float32Array(M * N)): Float32Array {
  c.fill(0);
  for (let m = 0; m < M; m++) {
    const cRow = m * N;
    for (let k = 0; k < K; k++) {
      const av = a[m * K + k];
      const bRow = k * N;
      for (let n = 0; n < N; n++) c[cRow + n] += av * b[bRow + n];
    }
  }
  return c;
}
