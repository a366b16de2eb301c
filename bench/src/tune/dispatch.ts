// Cost of one dispatch (encode + execute) of a trivial kernel on lavapipe, through our runtime.
import { init, dispose, rt, Tensor } from '@dawngrad/tensor';
await init();
const x = Tensor.empty([64]);
const kernel = { key: 'tune:noop', wgsl: () => `struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@compute @workgroup_size(8) fn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x < p.n) { X[g.x] = 1.0; } }` };
for (const n of [1, 100, 500, 1000]) {
  await rt().sync();
  const c0 = process.cpuUsage(), t0 = performance.now();
  for (let i = 0; i < n; i++) rt().dispatch({ kernel, buffers: [x.buffer], params: [8], workgroups: [1] });
  const enc = performance.now() - t0;
  await rt().sync();
  const c = process.cpuUsage(c0);
  console.log(`${n} dispatches: encode ${(enc / n * 1000).toFixed(1)} us each, total wall ${((performance.now() - t0) / n * 1000).toFixed(1)} us each, cpu ${((c.user + c.system) / n).toFixed(1)} us each`);
}
dispose();
