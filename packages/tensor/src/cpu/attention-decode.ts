// Float64 twins of kernels/attention-decode.ts: the KV-cache row scatter and single-query attention over a cache,
// written as the textbook formulas (a plain softmax, no online rescaling).
import { type F64, empty } from './array.ts';

// dst: [B, Tmax, W], src: [B, S, W], start: [B] -> a copy of dst with dst[b, start[b] + s, :] = src[b, s, :]
export function writeRowsAt(dst: F64, src: F64, start: F64): F64 {
  const [B, Tmax, W] = dst.shape as [number, number, number];
  const S = src.shape[1]!;
  const out = { shape: [...dst.shape], data: Float64Array.from(dst.data) };
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const t = start.data[b]! + s;
      if (t < 0 || t >= Tmax) continue;
      for (let w = 0; w < W; w++) out.data[(b * Tmax + t) * W + w] = src.data[(b * S + s) * W + w]!;
    }
  }
  return out;
}

// q: [B, H, D], k, v: [B, Tmax, KV, D], mask: [B, Tmax], pos: [B] -> [B, H, D]
// out[b, h] = Σ_j P_j v[b, j, g], P = softmax over keys j ≤ pos[b] with mask[b, j] ≠ 0 of scale·q[b, h]·k[b, j, g],
// g = floor(h / (H / KV)); with a sliding window W only keys pos[b] − W < j; zeros when no key is allowed.
export function attentionDecode(q: F64, k: F64, v: F64, mask: F64, pos: F64, opts: { scale?: number; window?: number | null } = {}): F64 {
  const [B, H, D] = q.shape as [number, number, number];
  const [, Tmax, KV] = k.shape as [number, number, number, number];
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const out = empty([B, H, D]);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV));
      const keys: number[] = [];
      const first = opts.window ? Math.max(0, pos.data[b]! - opts.window + 1) : 0;
      for (let j = first; j <= Math.min(pos.data[b]!, Tmax - 1); j++) if (mask.data[b * Tmax + j] !== 0) keys.push(j);
      if (keys.length === 0) continue;
      const s = keys.map((j) => {
        let dot = 0;
        for (let c = 0; c < D; c++) dot += q.data[(b * H + h) * D + c]! * k.data[((b * Tmax + j) * KV + g) * D + c]!;
        return scale * dot;
      });
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, x) => a + x, 0);
      keys.forEach((j, n) => {
        for (let c = 0; c < D; c++) out.data[(b * H + h) * D + c] += (e[n]! / z) * v.data[((b * Tmax + j) * KV + g) * D + c]!;
      });
    }
  }
  return out;
}
