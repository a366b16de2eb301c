// Strict flag parsing on top of node:util parseArgs, with typed numbers and range checks.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface Command {
  summary: string;
  run(argv: string[]): Promise<number | void>;
}

/** A usage error: exit code 2, one line. */
export class CliError extends Error {}

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

/** Parse argv against spec; unknown flags and stray positionals are errors unless `positionals` is set. */
export function parse<T extends FlagSpec>(command: string, argv: string[], options: T, positionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: positionals });
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
