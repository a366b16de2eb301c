// Serve the built demo (examples/browser/dist) with the shared tiny model beside it, on http://127.0.0.1:PORT/.
//
//   pnpm -s browser:serve [port]      (default 8080; build first with pnpm -s browser:build)
//
// Open it in Chrome or Edge (on Linux start Chrome with --enable-unsafe-webgpu), or any browser with WebGPU.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './server.ts';
import { DEMO_MODEL } from './build.ts';

const dist = join(dirname(fileURLToPath(import.meta.url)), 'dist');
if (!existsSync(join(dist, 'main.js'))) {
  console.error(`browser:serve: ${dist} has no build: run pnpm -s browser:build first`);
  process.exit(1);
}
const port = Number(process.argv[2] ?? 8080);
const s = await serveStatic({ '/': dist, '/models/tweet-mistral-tiny/': DEMO_MODEL }, port);
console.log(`dawngrad demo on ${s.url}/  (Ctrl-C stops it)`);
