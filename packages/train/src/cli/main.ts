#!/usr/bin/env node
// dawngrad: the command line. Each command lives in its own file and registers in run.ts; flags are parsed strictly
// (unknown flags, wrong types and out-of-range values are refused before any work starts).
import { runCli } from './run.ts';

runCli(process.argv.slice(2)).then((code) => process.exit(code));
