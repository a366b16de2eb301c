#!/usr/bin/env node
// pnpm -s build:cli [--out DIR] [[NAME=]ENTRY.ts ...]
//
// The CLI for machines that have Node but not the workspace. esbuild bundles packages/train/src/cli/main.ts with every
// workspace package and pure-JS dependency into one ESM file, DIR/dawngrad.mjs (default DIR: dist/cli). The packages
// that load a native module — Dawn's `webgpu` (dawn.node) and `@resvg/resvg-js` (its platform binary) — cannot be
// bundled: they are copied beside it under DIR/node_modules, with this platform's binary only, where the bundle's
// `import 'webgpu'` finds them. Each extra ENTRY.ts (a bench, a probe) is bundled the same way as DIR/<name>.mjs —
// its file name, or NAME when given as NAME=ENTRY.ts (scripts/gpu/pack.sh: bench=bench/src/main.ts).
// DIR/BUILD.json says what was built from what. Copy DIR anywhere and run `node DIR/dawngrad.mjs info`.
//
// The folder is built beside DIR and renamed into place: a failed build leaves the previous one whole. An existing DIR
// without BUILD.json is not ours and is refused rather than replaced.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(new URL(import.meta.url).pathname), '..');
const MAIN = join(REPO, 'packages/train/src/cli/main.ts');

function fail(msg) {
  console.error(`build-cli: ${msg}`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
} catch (e) {
  console.error(`build-cli: ${e.message.split('\n')[0]}`);
  process.exit(2);
}
if (args.values.help) {
  console.log('usage: pnpm -s build:cli [--out DIR] [[NAME=]ENTRY.ts ...]   (default DIR: dist/cli; NAME.mjs, else ENTRY.mjs)');
  process.exit(0);
}
const out = resolve(args.values.out ?? join(REPO, 'dist/cli'));
const named = args.positionals.map((a) => /^([\w.-]+)=(.+)$/.exec(a) ?? [a, basename(a).replace(/\.[cm]?[jt]s$/, ''), a]);
const entries = named.map((m) => resolve(m[2]));
for (const e of entries) if (!existsSync(e)) fail(`no such entry ${e}`);
const names = ['dawngrad', ...named.map((m) => m[1])];
if (new Set(names).size !== names.length) fail(`two entries would both write ${names.find((n, i) => names.indexOf(n) !== i)}.mjs`);
if (existsSync(out) && !existsSync(join(out, 'BUILD.json'))) fail(`${out} exists and was not written by build-cli (no BUILD.json): not replacing it`);

// packages with a native module, resolved from the package that depends on them
const NATIVE = [
  { name: 'webgpu', from: 'packages/tensor', files: ['package.json', 'index.js', `dist/${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`] },
  { name: '@resvg/resvg-js', from: 'packages/train', files: ['package.json', 'index.js', 'js-binding.js'], platformPackages: true },
];

const tmp = `${out}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
try {
  await build({
    entryPoints: [MAIN, ...entries].map((e, i) => ({ in: e, out: names[i] })),
    outdir: tmp,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    external: NATIVE.map((n) => n.name),
    // CommonJS dependencies inside an ESM bundle still call require()
    banner: { js: "import { createRequire as __dawngradRequire } from 'node:module'; const require = __dawngradRequire(import.meta.url);" },
  });
  const copied = [];
  for (const n of NATIVE) {
    const req = createRequire(join(REPO, n.from, 'package.json'));
    const src = dirname(req.resolve(`${n.name}/package.json`));
    const dst = join(tmp, 'node_modules', n.name);
    for (const f of n.files) {
      if (!existsSync(join(src, f))) fail(`${n.name}: ${f} is missing under ${src} (no build for ${process.platform}-${process.arch}?)`);
      cpSync(join(src, f), join(dst, f), { recursive: true, dereference: true });
    }
    copied.push(n.name);
    if (!n.platformPackages) continue;
    // the one optional per-platform package the install picked (e.g. @resvg/resvg-js-linux-x64-gnu)
    const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
    const req2 = createRequire(join(src, 'package.json'));
    for (const p of Object.keys(pkg.optionalDependencies ?? {})) {
      let dir;
      try {
        dir = dirname(req2.resolve(`${p}/package.json`));
      } catch {
        continue; // another platform's
      }
      cpSync(dir, join(tmp, 'node_modules', p), { recursive: true, dereference: true });
      copied.push(p);
    }
  }
  let commit = null;
  try {
    commit = execFileSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  writeFileSync(join(tmp, 'BUILD.json'), JSON.stringify({
    built: new Date().toISOString(), commit, node: process.version, platform: `${process.platform}-${process.arch}`,
    bundles: names.map((n) => `${n}.mjs`), nativePackages: copied,
  }, null, 2) + '\n');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(dirname(out), { recursive: true });
  renameSync(tmp, out);
} catch (e) {
  rmSync(tmp, { recursive: true, force: true });
  fail(e.message.split('\n')[0]);
}
console.log(`build-cli: ${out}: ${names.map((n) => `${n}.mjs`).join(', ')} + node_modules/{webgpu,@resvg}; run with: node ${join(out, 'dawngrad.mjs')}`);
