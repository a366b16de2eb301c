// The packages in a real browser: headless Chromium (Debian's package; its WebGPU adapter here is SwiftShader, a CPU)
// opens a page bundled by esbuild for the browser, which loads the HF fixture, its reference outputs and the PEFT
// adapter over HTTP (urlSource) and checks them with the Node parity tests' tolerances; two LoRA steps lower the loss;
// then the demo page (examples/browser) runs end to end and its screenshot is saved to .tmp/browser/demo.png (the one in
// docs/ comes from such a run), with its measured speed in .tmp/browser/demo.json.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, bundlePage } from './harness.ts';
import { serveStatic, type StaticServer } from '../../examples/browser/server.ts';
import { buildDemo } from '../../examples/browser/build.ts';
import { HF_TINY, REPO, TINY_MODEL } from '../shared.ts';

const meta = JSON.parse(readFileSync(join(HF_TINY, 'reference.json'), 'utf8'));
const OUT = join(REPO, '.tmp/browser');
let browser: Browser;
let server: StaticServer;
let page: Page;
const dirs: string[] = [];
const errors: string[] = [];

beforeAll(async () => {
  const pageDir = await bundlePage(join(REPO, 'test/browser/page.ts'));
  const demoDir = await buildDemo(mkdtempSync(join(tmpdir(), 'dawngrad-demo-')));
  dirs.push(pageDir, demoDir);
  server = await serveStatic({ '/': pageDir, '/fixtures/hf-tiny/': HF_TINY, '/demo/': demoDir, '/demo/models/tweet-mistral-tiny/': TINY_MODEL });
  browser = await launchChromium();
  page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => 'dawngradTest' in globalThis);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Call one of the test page's checks (test/browser/page.ts) and return its result. */
const call = <T>(name: string): Promise<T> => page.evaluate((n) => (globalThis as unknown as Record<string, Record<string, () => Promise<unknown>>>).dawngradTest![n]!(), name) as Promise<T>;

describe('dawngrad in headless Chromium', () => {
  it("takes the GPU from navigator.gpu (Chromium's adapter, not Dawn's)", async () => {
    const a = await call<{ platform: string; adapterClass: string; info: { vendor: string; architecture: string } }>('adapter');
    expect(a.platform).toBe('browser');
    expect(['cpu', 'discrete', 'integrated', 'unknown']).toContain(a.adapterClass);
    console.log(`browser adapter: ${a.info.vendor} ${a.info.architecture} (${a.adapterClass})`);
  });

  it('reproduces the HF fixture: base and PEFT-adapter logits, loss and every LoRA gradient, all over HTTP', async () => {
    const r = await call<{ baseLogits: number; loraLogits: number; loraLossRel: number; grads: Record<string, number>; loraNames: string[]; baseGrads: number; ms: number }>('parity');
    // the Node parity tests' bounds (test/parity/base.test.ts, lora.test.ts)
    expect(r.baseLogits).toBeLessThanOrEqual(1e-4);
    expect(r.loraLogits).toBeLessThanOrEqual(1e-4);
    expect(r.loraLossRel).toBeLessThanOrEqual(1e-5);
    expect(Object.keys(r.grads)).toEqual(meta['lora.names']);
    for (const [name, err] of Object.entries(r.grads)) expect(err, `gradient of ${name}`).toBeLessThanOrEqual(1e-3);
    expect(r.baseGrads).toBe(0);
    console.log(`browser parity: logits ${r.baseLogits.toExponential(1)} / ${r.loraLogits.toExponential(1)}, worst LoRA gradient ${Math.max(...Object.values(r.grads)).toExponential(1)}, ${(r.ms / 1000).toFixed(1)} s`);
  });

  it('two LoRA training steps lower the loss', async () => {
    const { losses } = await call<{ losses: number[] }>('loraSteps');
    expect(losses).toHaveLength(3);
    for (const l of losses) expect(Number.isFinite(l)).toBe(true);
    expect(losses[1]!).toBeLessThan(losses[0]!);
    expect(losses[2]!).toBeLessThan(losses[1]!);
  });

  it('an adapter URL with nothing there is one clear line naming the URL', async () => {
    const msg = await call<string>('missingAdapter');
    expect(msg).toMatch(/^adapter http:\/\/127\.0\.0\.1:\d+\/fixtures\/hf-tiny\/no-adapter: file "adapter_config\.json" does not exist in http:\S+no-adapter$/);
  });

  it('the demo page loads the tiny model, replies, trains 2 LoRA steps and classifies a tweet; screenshot saved', async () => {
    const demo = await browser.newPage({ viewport: { width: 1000, height: 760 } });
    demo.on('pageerror', (e) => errors.push(e.message));
    const t0 = Date.now();
    await demo.goto(`${server.url}/demo/?auto=1&steps=2&batch=4`);
    await demo.waitForFunction(() => (globalThis as unknown as { demoResult?: { state?: string } }).demoResult?.state, null, { timeout: 280_000, polling: 500 });
    const r = (await demo.evaluate(() => (globalThis as unknown as { demoResult: Record<string, unknown> }).demoResult)) as {
      error?: string; adapter: string; reply: string; losses: number[]; tokensPerSecond: number; secondsPerStep: number; probabilities: Record<string, number>;
    };
    expect(r.error).toBeUndefined();
    expect(r.adapter).not.toBe('');
    expect(typeof r.reply).toBe('string');
    expect(r.losses).toHaveLength(2);
    for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
    expect(Object.keys(r.probabilities)).toEqual(['negative', 'neutral', 'positive']);
    expect(Object.values(r.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    mkdirSync(OUT, { recursive: true });
    await demo.screenshot({ path: join(OUT, 'demo.png'), fullPage: true });
    writeFileSync(join(OUT, 'demo.json'), JSON.stringify({ ...r, wallSeconds: (Date.now() - t0) / 1000, date: new Date().toISOString() }, null, 2));
    console.log(`browser demo on ${r.adapter}: ${r.secondsPerStep.toFixed(1)} s/step, ${r.tokensPerSecond.toFixed(0)} tokens/s, ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
    await demo.close();
  }, 300_000);

  it('no uncaught error on either page', () => {
    expect(errors).toEqual([]);
  });
});
