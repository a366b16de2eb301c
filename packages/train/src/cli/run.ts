// The command line as a function: runCli(argv) runs one command and returns its exit code, printing a failure as one
// line on stderr (exit 2 for usage errors, 1 for anything else). main.ts calls it with process.argv; a program that
// needs to reach inside a command (a test stopping `train` after a checkpoint) calls it with a CliContext.
import { CliError, type CliContext, type Command } from './args.ts';
import { info } from './info.ts';
import { train, evalCmd } from './train.ts';
import { predict } from './predict.ts';
import { merge } from './merge.ts';
import { forward } from './forward.ts';
import { generateCmd } from './generate.ts';
import { benchModel } from './bench-model.ts';

const COMMANDS: Record<string, Command> = { train, eval: evalCmd, predict, merge, info, 'bench-model': benchModel, forward, generate: generateCmd };

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  dawngrad ${name.padEnd(12)} ${c.summary}`);
  return `usage: dawngrad <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun \`dawngrad <command> --help\` for its flags.`;
}

async function dispatch(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new CliError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
  return (await cmd.run(rest, ctx)) ?? 0;
}

/** Run `dawngrad ...argv`; resolves to the exit code (a failure has been printed as one line). */
export async function runCli(argv: string[], ctx: CliContext = {}): Promise<number> {
  try {
    return await dispatch(argv, ctx);
  } catch (err) {
    // one line, always: some messages (Dawn's adapter list, parser errors) carry newlines
    const msg = (err instanceof Error ? err.message : String(err)).trim().replace(/\s*\n\s*/g, '; ');
    console.error(`dawngrad: ${msg}`);
    if (process.env.DAWNGRAD_DEBUG && err instanceof Error) console.error(err.stack);
    return err instanceof CliError ? 2 : 1;
  }
}
