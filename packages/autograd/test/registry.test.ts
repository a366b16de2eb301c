// Every op in the registry must have a gradient property test: an op file added without one fails here.
// A test "covers" an op when a test file passes its OpDef constant (NAME in capitals, e.g. MUL) to checkOp.
// And the docs say what the code says: the README's gradient tables have one row per op whose backward cell is the
// op's `rule`, and the reading guide's op index has one row per op whose every named symbol is in the files it links.
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as autograd from '../src/index.ts';

const here = dirname(fileURLToPath(import.meta.url));

describe('gradient rule registry', () => {
  it('has a rule and a gradient property test for every op', () => {
    const sources = readdirSync(here)
      .filter((f) => f.endsWith('.test.ts') && f !== 'registry.test.ts')
      .map((f) => readFileSync(join(here, f), 'utf8'))
      .join('\n');
    // map each registered op to the exported OpDef constant that holds it
    const constName = new Map<string, string>();
    for (const [k, v] of Object.entries(autograd)) {
      if (v && typeof v === 'object' && 'name' in v && autograd.registry.get((v as { name: string }).name) === v) {
        constName.set((v as { name: string }).name, k);
      }
    }
    const missing: string[] = [];
    for (const [name, def] of autograd.registry) {
      expect(def.rule.length, `${name} has no gradient rule text`).toBeGreaterThan(3);
      const c = constName.get(name);
      if (!c || !new RegExp(`checkOp\\(\\s*${c}\\b|\\[${c},`).test(sources)) missing.push(`${name} (${c ?? 'not exported'})`);
    }
    expect(missing, 'ops without a gradient property test').toEqual([]);
    expect(autograd.registry.size).toBeGreaterThan(10);
  });
});

/** The rows of the README's gradient tables: `| \`op\` | forward | backward |` -> op -> backward cell. */
function readmeRules(): Map<string, string[]> {
  const readme = readFileSync(join(here, '../README.md'), 'utf8');
  const start = readme.indexOf('## The backward of every op');
  const end = readme.indexOf('\n## ', start + 1);
  expect(start, 'the README has a "The backward of every op" section').toBeGreaterThan(0);
  const rows = new Map<string, string[]>();
  for (const line of readme.slice(start, end).split('\n')) {
    const m = /^\| `([^`]+)` \|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    const cells = m[2]!.split(' | ').map((c) => c.trim());
    rows.set(m[1]!, [...(rows.get(m[1]!) ?? []), cells[cells.length - 1]!]);
  }
  return rows;
}

describe('the README gradient tables', () => {
  it('list every op once, with its rule string word for word', () => {
    const rows = readmeRules();
    const problems: string[] = [];
    for (const [name, def] of autograd.registry) {
      const got = rows.get(name);
      if (!got) problems.push(`${name}: no row in the README`);
      else if (got.length > 1) problems.push(`${name}: ${got.length} rows in the README`);
      else if (got[0] !== def.rule) problems.push(`${name}: README says "${got[0]}", the op's rule is "${def.rule}"`);
    }
    for (const name of rows.keys()) if (!autograd.registry.has(name)) problems.push(`${name}: a README row for an op the registry does not have`);
    expect(problems).toEqual([]);
    expect(rows.size).toBe(autograd.registry.size);
  });
});

describe("the reading guide's op index", () => {
  it('has a row for every op, and each symbol a row names is in a file that row links', () => {
    const guidePath = join(here, '../../../docs/reading-guide.md');
    const guide = readFileSync(guidePath, 'utf8');
    const start = guide.indexOf('## Op index');
    expect(start, 'docs/reading-guide.md has an "Op index" section').toBeGreaterThan(0);
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const line of guide.slice(start).split('\n')) {
      const m = /^\| `([^`]+)` \|(.*)$/.exec(line);
      if (!m) continue;
      const op = m[1]!;
      if (seen.has(op)) problems.push(`${op}: two rows`);
      seen.add(op);
      if (!autograd.registry.has(op)) problems.push(`${op}: not a registered op`);
      const files = [...m[2]!.matchAll(/\]\(([^)]+)\)/g)].map((l) => readFileSync(join(dirname(guidePath), l[1]!), 'utf8')).join('\n');
      // `name`, `name('x')`, `NAME.cpu.backward`: the identifier before any call or member access must be in a linked file
      // (link labels `[\`K/x.ts\`](...)` are paths, not symbols; `ref.x` names x, a member of the float64 namespace)
      for (const c of m[2]!.matchAll(/(?<!\[)`(?:ref\.)?([A-Za-z_]\w*)[^`]*`/g)) {
        const name = c[1]!;
        if (!new RegExp(`\\b${name}\\b`).test(files)) problems.push(`${op}: \`${name}\` is in none of the files its row links`);
      }
    }
    for (const op of autograd.registry.keys()) if (!seen.has(op)) problems.push(`${op}: no row`);
    expect(problems).toEqual([]);
  });
});
