// Headless Chromium for the browser tests: Debian's package (scripts/bootstrap.sh installs it), driven by
// playwright-core, with WebGPU on. On a machine without a GPU Chromium's adapter is SwiftShader (a CPU).
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.DAWNGRAD_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/bootstrap.sh (it installs Debian's chromium), or set DAWNGRAD_CHROMIUM`);
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
}

/** Bundle `entry` for the browser into a fresh folder with an index.html that loads it; returns the folder. */
export async function bundlePage(entry: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'dawngrad-page-'));
  await build({ entryPoints: { page: entry }, outdir: dir, bundle: true, platform: 'browser', format: 'esm', target: 'es2022', logLevel: 'warning' });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>dawngrad test</title><script type="module" src="page.js"></script>\n');
  return dir;
}
