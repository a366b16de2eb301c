// A/B of the matmul kernel behind a whole LoRA training step: the adapter's default path vs one forced for every
// shape, interleaved so both see the same load. pnpm exec tsx bench/src/tune/step-path.ts [subgroup|uniform|tiled] [rounds]
import { init, dispose, setMatmulPath, matmulPath, type MatmulPath } from '@dawngrad/tensor';
import { runStepBench } from '../step.ts';

await init();
const other = (process.argv[2] ?? 'subgroup') as MatmulPath;
const rounds = Number(process.argv[3] ?? 2);
const base = matmulPath();
for (let r = 0; r < rounds; r++) {
  for (const path of [null, other]) {
    setMatmulPath(path);
    const res = await runStepBench({ warmup: 2, steps: 4, batch: 16, top: 0, peer: false, profile: false, sharePrefix: true, log: () => {} });
    console.log(`round ${r + 1}: ${path ?? `${base} (default)`}: median ${res.medianMs.toFixed(0)} ms/step`);
  }
}
setMatmulPath(null);
dispose();
