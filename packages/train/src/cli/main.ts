#!/usr/bin/env node
// dawngrad: the command line. Each command lives in its own file and registers here; flags are parsed strictly
// (unknown flags, wrong types and out-of-range values are refused before any work starts).
import { CliError, type Command } from './args.ts';
import { info } from './info.ts';
import { train, evalCmd, predict } from './train.ts';
import { merge } from './merge.ts';
import { forward } from './forward.ts';
import { generateCmd } from './generate.ts';
import { benchModel } from './bench-model.ts';

const COMMANDS: Record<string, Command> = { train, eval: evalCmd, predict, merge, info, 'bench-model': benchModel, forward, generate: generateCmd };

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  dawngrad ${name.padEnd(12)} ${c.summary}`);
  return `usage: dawngrad <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun \`dawngrad <command> --help\` for its flags.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new CliError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
  return (await cmd.run(rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // one line, always: some messages (Dawn's adapter list, parser errors) carry newlines
    const msg = (err instanceof Error ? err.message : String(err)).trim().replace(/\s*\n\s*/g, '; ');
    console.error(`dawngrad: ${msg}`);
    if (process.env.DAWNGRAD_DEBUG && err instanceof Error) console.error(err.stack);
    process.exit(err instanceof CliError ? 2 : 1);
  },
);
