// tensor, autograd, model and lora run in a browser tab: none of their modules may import a Node built-in (or Dawn's
// native `webgpu` package), except tensor's Node entry, device-node.ts, which package.json's "#platform" import maps
// away under the "browser" condition. Checked two ways: statically, every import of every source file (type-only
// imports are erased and allowed); and by bundling the four packages for the browser with esbuild, as the demo page is
// built, which fails on any `node:` import that reaches the bundle.
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { build } from 'esbuild';
import { REPO } from './shared.ts';

const BROWSER_PACKAGES = ['tensor', 'autograd', 'model', 'lora'];
/** The one module allowed Node and Dawn: tensor's Node entry. */
const NODE_ENTRY = 'packages/tensor/src/device-node.ts';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The module specifiers a file loads at run time: imports, re-exports, import() and require(), less type-only ones. */
export function runtimeImports(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier) && !n.importClause?.isTypeOnly) out.push(n.moduleSpecifier.text);
    else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier) && !n.isTypeOnly) out.push(n.moduleSpecifier.text);
    else if (ts.isCallExpression(n) && (n.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(n.expression) && n.expression.text === 'require'))) {
      const a = n.arguments[0];
      out.push(a && ts.isStringLiteralLike(a) ? a.text : '<computed>');
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const isNodeOnly = (spec: string) => spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!) || spec === 'webgpu' || spec === '<computed>';

describe('the browser packages import no Node built-in', () => {
  it('the import scanner sees value imports, re-exports, import() and require(), and skips type-only imports', () => {
    const text = [
      "import { readFileSync } from 'node:fs';",
      "import type { FileHandle } from 'node:fs/promises';",
      "export { join } from 'path';",
      "export type { Stats } from 'node:fs';",
      "const os = await import('node:os');",
      "const cp = require('child_process');",
      "const x = await import(name);",
    ].join('\n');
    expect(runtimeImports('x.ts', text)).toEqual(['node:fs', 'path', 'node:os', 'child_process', '<computed>']);
    expect(runtimeImports('x.ts', text).filter(isNodeOnly)).toHaveLength(5);
  });

  it.each(BROWSER_PACKAGES)('%s: only tensor/src/device-node.ts imports node: or webgpu', (p) => {
    const offenders: string[] = [];
    for (const file of sources(join(REPO, 'packages', p, 'src'))) {
      const rel = relative(REPO, file);
      if (rel === NODE_ENTRY) continue;
      for (const spec of runtimeImports(file, readFileSync(file, 'utf8'))) if (isNodeOnly(spec)) offenders.push(`${rel} imports ${spec}`);
    }
    expect(offenders).toEqual([]);
  });

  it("tensor's package.json maps #platform to the Node entry, and to device-browser.ts under the browser condition", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'packages/tensor/package.json'), 'utf8'));
    expect(pkg.imports['#platform']).toEqual({ browser: './src/device-browser.ts', default: './src/device-node.ts' });
    expect(pkg.publishConfig.imports['#platform']).toEqual({ browser: './dist/device-browser.js', default: './dist/device-node.js' });
  });

  it('esbuild bundles all four for the browser without a Node module, and without Dawn', async () => {
    const r = await build({
      stdin: { contents: BROWSER_PACKAGES.map((p) => `export * as ${p} from '@dawngrad/${p}';`).join('\n'), resolveDir: join(REPO, 'test'), loader: 'ts' },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((i) => i.endsWith('packages/tensor/src/device-browser.ts'))).toBe(true);
    expect(inputs.filter((i) => i.includes('device-node') || i.includes('/webgpu/') || i.startsWith('node:'))).toEqual([]);
  }, 60_000);
});
