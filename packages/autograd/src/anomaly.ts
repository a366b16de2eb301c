// Anomaly detection (`dawngrad train --detect-anomaly`): find the first op that produced a NaN or an infinity.
// While on, apply() counts the non-finite values of every op's output — and of every parameter the op reads, once per
// round — into one u32 GPU buffer, a slot per check, in execution order; backward does the same for each gradient an
// op returns. Nothing is read back until checkAnomalies(), which names the first slot that counted something.
// Debug only: it adds a dispatch per op and a readback per check. Off, it costs one boolean test per op.
import { Tensor, keep, fill, countNonFinite } from '@dawngrad/tensor';
import type { Var } from './var.ts';

/** Slots per counts buffer; more checks than this between two checkAnomalies() open another buffer. */
const CHUNK = 4096;

interface Round {
  chunks: Tensor[]; // u32 [CHUNK] each, zeroed
  labels: string[]; // labels[k] describes slot k (chunk k / CHUNK)
  leaves: Set<Var>; // parameters already checked this round
}

let round: Round | null = null;

/** Turn anomaly detection on or off (off drops any unchecked counts). */
export function detectAnomaly(on: boolean): void {
  if (!on) dropRound();
  else round ??= { chunks: [], labels: [], leaves: new Set() };
}

export function anomalyDetection(): boolean {
  return round !== null;
}

function dropRound(): void {
  for (const c of round?.chunks ?? []) c.dispose();
  round = null;
}

/** Count the non-finite values of `t` (f32 only) under `label`. A no-op when detection is off. */
export function checkFinite(label: string, t: Tensor): void {
  const r = round;
  if (!r || t.dtype !== 'f32') return;
  const k = r.labels.length;
  if (k % CHUNK === 0) r.chunks.push(keep(fill([CHUNK], 0, 'u32'))); // keep: outlives the step's scope
  r.labels.push(label);
  countNonFinite(t, r.chunks[Math.floor(k / CHUNK)]!, k % CHUNK);
}

/** Check the parameters (leaves that require grad) an op reads, each once per round. */
export function checkLeaves(op: string, inputs: Var[]): void {
  const r = round;
  if (!r) return;
  for (const v of inputs) {
    if (!v.isLeaf || !v.requiresGrad || r.leaves.has(v)) continue;
    r.leaves.add(v);
    checkFinite(`parameter ${v.name ?? '(unnamed)'} [${v.shape.join(', ')}] (read by ${op})`, v.data);
  }
}

/** Describe a Var for a label: its name, else the op that made it. */
export function describeVar(v: Var): string {
  return v.name ?? v.op;
}

/** Thrown by checkAnomalies(): `source` is the label of the first check that counted a NaN or an infinity. */
export class AnomalyError extends Error {
  constructor(
    readonly source: string,
    readonly count: number,
  ) {
    super(`first non-finite value: ${source} (${count} NaN/Inf value${count === 1 ? '' : 's'})`);
  }
}

/**
 * Read the counts back and start a new round. Throws an AnomalyError naming the first op (in execution order) whose
 * output, or parameter whose value, held a NaN or an infinity.
 */
export async function checkAnomalies(): Promise<void> {
  const r = round;
  if (!r) return;
  round = { chunks: [], labels: [], leaves: new Set() };
  try {
    for (let c = 0; c < r.chunks.length; c++) {
      const counts = (await r.chunks[c]!.toArray()) as Uint32Array;
      const n = Math.min(CHUNK, r.labels.length - c * CHUNK);
      for (let i = 0; i < n; i++) if (counts[i]! > 0) throw new AnomalyError(r.labels[c * CHUNK + i]!, counts[i]!);
    }
  } finally {
    for (const t of r.chunks) t.dispose();
  }
}
