// The shape of a registered bench and of what it reports. A bench measures one op family (or a whole step) for us and
// for whichever peers have it, and returns rows; main.ts prints them and writes bench/results/<name>.json.

/** One measured case: our figure, each peer's (null: the peer lacks the op or skipped the size), in `unit`. */
export interface Row {
  case: string;
  /** higher is better for every unit we report (GFLOP/s, GB/s) */
  unit: string;
  ours: number | null;
  peers: Record<string, number | null>;
  /** free-form facts about the case: the kernel used, per-implementation median ms, why a peer skipped */
  notes?: Record<string, unknown>;
}

export interface BenchContext {
  /** --quick: smaller time budgets (for a smoke run) */
  quick: boolean;
  /** print a progress line */
  log: (line: string) => void;
  /** --smoke: the GPU benches at tiny sizes (a check of the machinery on lavapipe, not a measurement) */
  smoke?: boolean;
  /** --step-flags: extra flags the GPU step bench passes to `dawngrad bench-model` (e.g. --no-tune; not --precision: it runs both) */
  extraFlags?: string[];
}

/** What a bench returns: the rows by wall clock, and the same rows from CPU time spread over the cores (steadier when
 * other processes share the machine: it counts only this process's own work, lavapipe's threads included). */
export interface BenchOutput {
  rows: Row[];
  /** optional: benches that time with timeGpu get it for free (lib/timing.ts rowsFor) */
  rowsCpu?: Row[];
  info?: Record<string, unknown>;
}

export interface Bench {
  /** file name under bench/results/ and the CLI selector */
  name: string;
  title: string;
  /** peer column names, in table order */
  peers: string[];
  run(ctx: BenchContext): Promise<BenchOutput>;
}

/** One matmul case, op(A)·op(B) with op(A): [M, K] and op(B): [K, N]; a transposed operand is stored transposed. */
export interface MatmulCase {
  name: string;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
}
