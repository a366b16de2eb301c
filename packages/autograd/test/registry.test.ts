// Every op in the registry must have a gradient property test: an op file added without one fails here.
// A test "covers" an op when a test file passes its OpDef constant (NAME in capitals, e.g. MUL) to checkOp.
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
