// The packages as a consumer outside the workspace gets them: each package's own tsconfig.build.json compiles its
// public API to dist/ (.js + .d.ts), laid out in a temp node_modules with the package.json that `pnpm pack` would
// publish (its "publishConfig" swapped in: exports -> dist). Then plain node — no tsx, no loader — imports the built
// @dawngrad/tensor and @dawngrad/train and runs a GPU op and an AdamW step, and a consumer's TypeScript file is
// type-checked against the built declarations.
//
// Everything is built into a temp dir (nothing under packages/*/dist is read or written). One TypeScript compiler
// instance builds the five packages in dependency order and shares the parsed lib and @types files between them,
// so this costs one lib parse instead of five tsc start-ups. Type errors are the typecheck's job (`tsc --noEmit`):
// the build here skips checking and keeps only what emit reports (a declaration that cannot be written, say).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { REPO } from './shared.ts';

const PACKAGES = ['tensor', 'autograd', 'model', 'lora', 'train']; // dependency order
const TIMEOUT = 300_000;

let tmp: string;
const nm = () => join(tmp, 'node_modules');
const out = (p: string) => join(nm(), '@dawngrad', p);

interface PackageJson {
  name: string;
  exports?: unknown;
  files?: string[];
  dependencies?: Record<string, string>;
  publishConfig?: Record<string, unknown>;
}
const pkgJson = (p: string): PackageJson => JSON.parse(readFileSync(join(REPO, 'packages', p, 'package.json'), 'utf8'));

/** A compiler host that parses each file once across all five programs (lib.*.d.ts and @types/node dominate). */
function cachingHost(options: ts.CompilerOptions): ts.CompilerHost {
  const host = ts.createCompilerHost(options);
  const cache = new Map<string, ts.SourceFile | undefined>();
  const get = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, version, onError, create) => {
    // our own sources are parsed per program (their module format depends on the importing package); libs are shared
    const shared = fileName.includes('/node_modules/') && fileName.endsWith('.d.ts');
    const key = `${fileName}|${JSON.stringify(version)}`;
    if (shared && cache.has(key)) return cache.get(key);
    const sf = get(fileName, version, onError, create);
    if (shared) cache.set(key, sf);
    return sf;
  };
  return host;
}

/** Build packages/<p> with its tsconfig.build.json into the temp node_modules; returns emit's diagnostics. */
function build(p: string, host: ts.CompilerHost | null): { diagnostics: string[]; host: ts.CompilerHost } {
  const configPath = join(REPO, 'packages', p, 'tsconfig.build.json');
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    // the only changes: write to the temp dir, read siblings' declarations from there, skip the type check
    { outDir: join(out(p), 'dist'), paths: { '@dawngrad/*': [join(nm(), '@dawngrad/*/dist/index.d.ts')] }, noCheck: true },
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } },
  );
  if (!parsed) throw new Error(`cannot read ${configPath}`);
  const h = host ?? cachingHost(parsed.options);
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options, host: h });
  const emitted = program.emit();
  const diagnostics = [...parsed.errors, ...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics(), ...emitted.diagnostics].map(
    (d) => `${d.file ? `${d.file.fileName}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`,
  );
  return { diagnostics, host: h };
}

/** What `pnpm pack` writes: publishConfig's fields over the package's own, workspace:* pinned to a version. */
function publishedPackageJson(p: string): PackageJson {
  const { publishConfig, ...rest } = pkgJson(p);
  const deps = Object.fromEntries(Object.entries(rest.dependencies ?? {}).map(([k, v]) => [k, v.startsWith('workspace:') ? '0.1.0' : v]));
  return { ...rest, ...publishConfig, dependencies: deps };
}

/** Link a third-party dependency of packages/<p> into the temp node_modules (the workspace's installed copy). */
function linkDependency(p: string, dep: string): void {
  const to = join(nm(), dep);
  if (existsSync(to)) return;
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(realpathSync(join(REPO, 'packages', p, 'node_modules', dep)), to, 'dir');
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-build-'));
  tmp = realpathSync(tmp);
  writeFileSync(join(tmp, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // what a TypeScript consumer installs beside the packages: Node's types and WebGPU's (GPUBuffer in tensor's API)
  for (const dep of ['@types/node', '@webgpu/types']) {
    mkdirSync(dirname(join(nm(), dep)), { recursive: true });
    symlinkSync(realpathSync(join(REPO, 'node_modules', dep)), join(nm(), dep), 'dir');
  }
}, TIMEOUT);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the packages build to dist/ and work outside the workspace', () => {
  const diagnostics = new Map<string, string[]>();

  it('every package publishes dist/ through an exports map, and keeps ./src/index.ts for the workspace', () => {
    for (const p of PACKAGES) {
      const j = pkgJson(p);
      expect(j.exports, p).toEqual({ '.': './src/index.ts' }); // tests, tsx and benches read the sources
      expect(j.files, p).toEqual(['dist']);
      expect(publishedPackageJson(p).exports, p).toEqual({ '.': { types: './dist/index.d.ts', default: './dist/index.js' } });
    }
  });

  it('each tsconfig.build.json emits .js and .d.ts for every module of the public API', () => {
    let host: ts.CompilerHost | null = null;
    for (const p of PACKAGES) {
      const r = build(p, host);
      host = r.host;
      diagnostics.set(p, r.diagnostics);
      writeFileSync(join(out(p), 'package.json'), JSON.stringify(publishedPackageJson(p), null, 2));
      for (const dep of Object.keys(pkgJson(p).dependencies ?? {})) if (!dep.startsWith('@dawngrad/')) linkDependency(p, dep);
    }
    for (const p of PACKAGES) {
      expect(diagnostics.get(p), `${p}: the build reported problems`).toEqual([]);
      for (const f of ['index.js', 'index.d.ts']) expect(existsSync(join(out(p), 'dist', f)), `${p}/dist/${f}`).toBe(true);
      // relative imports were rewritten: the emitted JavaScript asks for ./x.js, which exists
      const js = readFileSync(join(out(p), 'dist/index.js'), 'utf8');
      const specs = [...js.matchAll(/from "(\.[^"]+)"/g)].map((m) => m[1]!);
      expect(specs.length, `${p}/dist/index.js re-exports nothing`).toBeGreaterThan(0);
      for (const s of specs) {
        expect(s, `${p}/dist/index.js imports ${s}`).toMatch(/\.js$/);
        expect(existsSync(join(out(p), 'dist', s)), `${p}/dist/${s}`).toBe(true);
      }
    }
  }, TIMEOUT);

  it('plain node imports the built @dawngrad/tensor and @dawngrad/train and runs them on the GPU', () => {
    // w = [1, -2, 3], loss = Σ w² (gradient 2w); one AdamW step without weight decay moves each weight by lr against
    // the sign of its gradient (m̂/√v̂ = g/|g| on the first step), so w becomes w - 0.1·sign(w)
    const script = `
      import { init, dispose, Tensor, add } from '@dawngrad/tensor';
      import { param, mul, sum, backward } from '@dawngrad/autograd';
      import { AdamW, computeMetrics } from '@dawngrad/train';
      await init();
      const sumIs = Array.from(await add(Tensor.fromArray([1, 2, 3]), Tensor.fromArray([10, 20, 30])).toArray());
      const w = param(Tensor.fromArray([1, -2, 3]));
      backward(sum(mul(w, w)));
      const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
      opt.update();
      const after = Array.from(await w.data.toArray());
      const f1 = computeMetrics([0, 1, 2, 2], [0, 1, 2, 2]).macroF1;
      console.log(JSON.stringify({ sumIs, after, f1, resolved: import.meta.resolve('@dawngrad/train') }));
      dispose();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const line = r.stdout.trim().split('\n').pop()!;
    const got = JSON.parse(line) as { sumIs: number[]; after: number[]; f1: number; resolved: string };
    expect(got.resolved).toBe(pathToFileURL(join(out('train'), 'dist/index.js')).href);
    expect(got.sumIs).toEqual([11, 22, 33]);
    [0.9, -1.9, 2.9].forEach((v, i) => expect(got.after[i]).toBeCloseTo(v, 5));
    expect(got.f1).toBe(1);
  }, TIMEOUT);

  it("a consumer's TypeScript type-checks against the built declarations (and they are not `any`)", () => {
    const file = join(tmp, 'consumer.ts');
    writeFileSync(
      file,
      [
        "import { Tensor } from '@dawngrad/tensor';",
        "import { computeMetrics, type Metrics } from '@dawngrad/train';",
        "import { inject, type LoraModel } from '@dawngrad/lora';",
        'export const m: Metrics = computeMetrics([0, 1], [0, 1]);',
        'export const f1: number = m.macroF1;',
        'export const wrong: string = m.macroF1; // must be refused',
        'export const t: Tensor | null = null;',
        'export const injectFn: typeof inject = inject;',
        'export const lora: LoraModel | null = null;',
      ].join('\n'),
    );
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node', '@webgpu/types'],
      lib: ['lib.es2022.d.ts'],
    };
    const program = ts.createProgram([file], options);
    const errors = ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' '));
    // exactly the one deliberate error: everything else resolved through the exports map's "types"
    expect(errors).toEqual([expect.stringMatching(/Type 'number' is not assignable to type 'string'/)]);
  }, TIMEOUT);
});
