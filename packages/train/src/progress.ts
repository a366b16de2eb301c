// A progress reporter for training and evaluation loops.
//
// On a TTY: one status line redrawn in place (carriage return + clear-to-end), throttled so a fast loop does not
// spend its time printing. Elsewhere (CI logs, files, pipes): plain lines, one whenever `intervalMs` has passed or
// another `percentStep` percent is done, so logs stay short and still show that the run is alive.
// Rates are measured over a recent window, so the one-off warm-up (pipeline compilation) stops skewing the ETA.

/** Where progress goes: process.stderr (the default), process.stdout, or a test double. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  /** Terminal width; the line is fitted to it on a TTY. */
  columns?: number;
}

export interface ProgressOptions {
  /** Iterations expected (steps, batches, examples). */
  total: number;
  /** Shown first on every line, e.g. 'train' or 'eval'. */
  label?: string;
  stream?: ProgressStream;
  /** Force TTY (redrawn bar) or plain-line mode; default: stream.isTTY. */
  tty?: boolean;
  /** Milliseconds clock; inject a fake one in tests. Default performance.now. */
  now?: () => number;
  /** Plain mode: print a line at least this often while ticking (ms); default 10 000. */
  intervalMs?: number;
  /** Plain mode: also print a line each time this many more percent are done; default 10. */
  percentStep?: number;
  /** TTY mode: minimum time between redraws (ms); default 100. */
  redrawMs?: number;
  /** Window over which it/s and tokens/s are measured (ms); default 30 000. */
  windowMs?: number;
  /** Name of one iteration in rates, default 'it'. */
  unit?: string;
  /** Iterations already done before this loop started (a resumed run): they count toward % and the ETA's remainder,
   *  never toward it/s, which would otherwise read as thousands of steps per second. Default 0. */
  initial?: number;
}

export interface TickInfo {
  /** The latest loss, shown as is (pass a smoothed value if you prefer). */
  loss?: number;
  /** Tokens processed in these iterations (summed for tokens/s). */
  tokens?: number;
}

/** Seconds as "42s", "3m05s" or "1h02m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A rate with 3 significant digits and k/M suffixes: 0.123, 12.3, 4.56k. */
export function formatRate(v: number): string {
  if (!Number.isFinite(v)) return '?';
  if (v >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return v.toPrecision(3);
}

interface Sample { t: number; count: number; tokens: number }

export class Progress {
  readonly total: number;
  readonly label: string;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly percentStep: number;
  private readonly redrawMs: number;
  private readonly windowMs: number;
  private readonly unit: string;
  private readonly start: number;
  private readonly initial: number;
  private samples: Sample[] = [];
  private lastWrite = -Infinity;
  private lastBucket = 0;
  private finished = false;
  /** Iterations done so far. */
  count = 0;
  /** Tokens reported so far. */
  tokens = 0;
  /** The last loss reported, if any. */
  loss: number | undefined;

  constructor(opts: ProgressOptions) {
    if (!Number.isInteger(opts.total) || opts.total <= 0) throw new Error(`Progress total must be a positive integer, got ${opts.total}`);
    this.total = opts.total;
    this.label = opts.label ?? '';
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean(this.stream.isTTY);
    this.now = opts.now ?? (() => performance.now());
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.percentStep = opts.percentStep ?? 10;
    this.redrawMs = opts.redrawMs ?? 100;
    this.windowMs = opts.windowMs ?? 30_000;
    this.unit = opts.unit ?? 'it';
    this.start = this.now();
    this.initial = opts.initial ?? 0;
    if (!Number.isInteger(this.initial) || this.initial < 0 || this.initial > this.total) {
      throw new Error(`Progress initial must be an integer in [0, ${this.total}], got ${opts.initial}`);
    }
    this.count = this.initial;
    this.samples.push({ t: this.start, count: this.count, tokens: 0 });
  }

  /** Records `n` more iterations (default 1) and maybe prints. */
  tick(n = 1, info: TickInfo = {}): void {
    if (this.finished) throw new Error(`Progress '${this.label}': tick() after done()`);
    if (!Number.isFinite(n) || n < 0) throw new Error(`Progress tick count must be a non-negative number, got ${n}`);
    this.count += n;
    if (info.tokens !== undefined) this.tokens += info.tokens;
    if (info.loss !== undefined) this.loss = info.loss;
    const t = this.now();
    // Ticks closer together than windowMs/64 share a sample, so a very fast loop keeps at most ~64 of them.
    const last = this.samples[this.samples.length - 1];
    if (this.samples.length > 1 && t - this.samples[this.samples.length - 2].t < this.windowMs / 64) {
      last.t = t; last.count = this.count; last.tokens = this.tokens;
    } else this.samples.push({ t, count: this.count, tokens: this.tokens });
    // Keep the window: drop samples older than windowMs, but always keep two to measure between.
    while (this.samples.length > 2 && t - this.samples[1].t >= this.windowMs) this.samples.shift();

    if (this.tty) {
      if (t - this.lastWrite >= this.redrawMs) this.redraw(t);
      return;
    }
    const bucket = this.percentStep > 0 ? Math.floor((100 * Math.min(this.count, this.total)) / this.total / this.percentStep) : 0;
    if (t - this.lastWrite >= this.intervalMs || bucket > this.lastBucket) {
      this.lastBucket = bucket;
      this.lastWrite = t;
      this.stream.write(`${this.status(t)}\n`);
    }
  }

  /** Prints the final line (and ends the TTY line). Further calls do nothing. */
  done(info: TickInfo = {}): void {
    if (this.finished) return;
    if (info.loss !== undefined) this.loss = info.loss;
    if (info.tokens !== undefined) this.tokens += info.tokens;
    this.finished = true;
    const t = this.now();
    const secs = (t - this.start) / 1000;
    const parts = [
      this.label ? `${this.label} done` : 'done',
      `${this.count}/${this.total} in ${formatDuration(secs)}`,
      `${formatRate(secs > 0 ? (this.count - this.initial) / secs : NaN)} ${this.unit}/s`,
    ];
    if (this.tokens > 0) parts.push(`${formatRate(secs > 0 ? this.tokens / secs : NaN)} tok/s`);
    if (this.loss !== undefined) parts.push(`loss ${this.loss.toFixed(4)}`);
    const line = parts.join(', ');
    this.stream.write(this.tty ? `\r${this.fit(line)}\x1b[K\n` : `${line}\n`);
  }

  /** Iterations and tokens per second over the recent window. */
  rates(t = this.now()): { perSec: number; tokensPerSec: number } {
    const first = this.samples[0];
    const dt = (t - first.t) / 1000;
    if (dt <= 0) return { perSec: NaN, tokensPerSec: NaN };
    return { perSec: (this.count - first.count) / dt, tokensPerSec: (this.tokens - first.tokens) / dt };
  }

  /** The status text without a bar: label, %, count, elapsed, ETA, rates, loss. */
  status(t = this.now()): string {
    return this.describe(t, null);
  }

  private describe(t: number, barWidth: number | null): string {
    const frac = Math.min(1, this.count / this.total);
    const { perSec, tokensPerSec } = this.rates(t);
    const eta = perSec > 0 ? Math.max(0, this.total - this.count) / perSec : NaN;
    const pct = `${(100 * frac).toFixed(0).padStart(3)}%`;
    const parts: string[] = [];
    if (this.label) parts.push(this.label);
    if (barWidth !== null) {
      const filled = Math.round(frac * barWidth);
      parts.push(`${pct} |${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}|`);
    } else parts.push(pct);
    parts.push(`${this.count}/${this.total}`);
    parts.push(`${formatDuration((t - this.start) / 1000)} eta ${formatDuration(eta)}`);
    parts.push(`${formatRate(perSec)} ${this.unit}/s`);
    if (this.tokens > 0) parts.push(`${formatRate(tokensPerSec)} tok/s`);
    if (this.loss !== undefined) parts.push(`loss ${this.loss.toFixed(4)}`);
    return parts.join(' ');
  }

  private redraw(t: number): void {
    this.lastWrite = t;
    const cols = this.stream.columns ?? 80;
    // The bar takes what the text leaves, up to 40 cells; under 10 it is left out.
    const room = cols - 1 - this.describe(t, 0).length;
    const bar = room >= 10 ? Math.min(40, room) : null;
    this.stream.write(`\r${this.fit(this.describe(t, bar))}\x1b[K`);
  }

  /** Cuts a TTY line to the terminal width: a wrapped line cannot be redrawn with \r. */
  private fit(line: string): string {
    const cols = this.stream.columns ?? 80;
    return line.length > cols - 1 ? line.slice(0, cols - 1) : line;
  }
}
