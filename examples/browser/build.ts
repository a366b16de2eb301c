// Build the demo page to static files: examples/browser/dist/{index.html, main.js, tweets.json}.
//
//   pnpm -s browser:build            (then pnpm -s browser:serve, or any static server with the model beside the page)
//
// esbuild bundles main.ts and the dawngrad packages for the browser: its "browser" condition maps tensor's #platform
// import to device-browser.ts, so neither Dawn nor a Node module reaches the bundle. tweets.json is a class-balanced
// handful of TweetEval train tweets (the LoRA steps' data), read here in Node. The model is not copied: serve.ts serves
// ../shared/models/tweet-mistral-tiny at models/tweet-mistral-tiny/ beside the page (copy it there for another server).
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { loadSplit, stratifiedSubset } from '../../packages/train/src/data.ts'; // relative: the browser test imports this file too

const HERE = dirname(fileURLToPath(import.meta.url));
export const SHARED = join(HERE, '../../../shared');
export const DEMO_MODEL = join(SHARED, 'models/tweet-mistral-tiny');
export const DEMO_TWEETS = 48;

/** Bundle the page into `out` (default examples/browser/dist); returns the folder. */
export async function buildDemo(out = join(HERE, 'dist')): Promise<string> {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(HERE, 'main.ts')],
    outfile: join(out, 'main.js'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    sourcemap: true,
    logLevel: 'warning',
  });
  copyFileSync(join(HERE, 'index.html'), join(out, 'index.html'));
  const train = stratifiedSubset(await loadSplit(join(SHARED, 'data/tweet_eval/sentiment'), 'train'), DEMO_TWEETS, { seed: 0 });
  writeFileSync(join(out, 'tweets.json'), JSON.stringify({ texts: train.texts, labels: train.labels }));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildDemo();
  console.log(`built ${out}: index.html, main.js, tweets.json (${DEMO_TWEETS} tweets)`);
}
