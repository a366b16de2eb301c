// Strict flag parsing on top of node:util parseArgs, with typed numbers and range checks.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { TrainHooks } from '../trainer.ts';

export interface Command {
  summary: string;
  run(argv: string[], ctx?: CliContext): Promise<number | void>;
}

/** What a program that runs the CLI in-process may hand a command besides argv; the command line itself passes none. */
export interface CliContext {
  /** callbacks into `dawngrad train` (tests use them to stop a run after a checkpoint or to poison a weight) */
  trainHooks?: TrainHooks;
}

/** A usage error: exit code 2, one line. */
export class CliError extends Error {}

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

/**
 * `--flag -1` -> `--flag=-1` for a flag that takes a value: parseArgs calls a value starting with '-' ambiguous, so a
 * negative number would be refused as "ambiguous" instead of by its range check ("must be ≥ 1, got '-1'").
 */
function joinNegativeValues(argv: string[], options: FlagSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : null;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d|Infinity|NaN)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Parse argv against spec; unknown flags and stray positionals are errors unless `positionals` is set. */
export function parse<T extends FlagSpec>(command: string, argv: string[], options: T, positionals = false) {
  try {
    return parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: positionals });
  } catch (e) {
    throw new CliError(`${command}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** A number flag: must parse fully and satisfy the check (e.g. `x > 0`), else a CliError naming the flag. */
export function num(
  command: string,
  flag: string,
  value: string | undefined,
  fallback: number,
  check: { int?: boolean; min?: number; minExclusive?: number; max?: number } = {},
): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  const bad = (why: string) => new CliError(`${command}: --${flag} ${why}, got '${value}'`);
  if (value.trim() === '' || !Number.isFinite(v)) throw bad('must be a number');
  if (check.int && !Number.isInteger(v)) throw bad('must be an integer');
  if (check.min !== undefined && v < check.min) throw bad(`must be ≥ ${check.min}`);
  if (check.minExclusive !== undefined && v <= check.minExclusive) throw bad(`must be > ${check.minExclusive}`);
  if (check.max !== undefined && v > check.max) throw bad(`must be ≤ ${check.max}`);
  return v;
}

/** --precision: f32 (default) or mixed (the frozen weights in f16, f16 matmuls summed in f32). */
export function precisionFlag(command: string, v: string | undefined): 'f32' | 'mixed' | undefined {
  if (v === undefined || v === 'f32' || v === 'mixed') return v;
  throw new CliError(`${command}: --precision must be f32 or mixed, got '${v}'`);
}
