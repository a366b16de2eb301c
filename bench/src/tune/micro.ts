// Microbenchmarks behind the matmul design: the cost of one op per 8-lane batch on lavapipe — storage, uniform-buffer,
// texture, workgroup and private loads, subgroup broadcast/shuffle, FMA — from U=8 vs U=40 unrolled copies (CPU time).
//   pnpm exec tsx bench/src/tune/micro.ts   (ONLY=name to run one)
import { init, dispose } from '@dawngrad/tensor';
const r = await init();
const dev = await (await r.ctx.gpu.requestAdapter())!.requestDevice({ requiredFeatures: ['subgroups' as GPUFeatureName] });
dev.addEventListener('uncapturederror', (e) => { console.error(String((e as GPUUncapturedErrorEvent).error.message).slice(0, 300)); process.exit(1); });
const W = 256, H = 256; // rgba32f texture 256x256 = 1 MiB
const texData = new Float32Array(W * H * 4).map(() => Math.random());
const texRGBA = dev.createTexture({ size: [W, H], format: 'rgba32float', usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST });
dev.queue.writeTexture({ texture: texRGBA }, texData, { bytesPerRow: W * 16 }, [W, H]);
const texR = dev.createTexture({ size: [W * 4, H], format: 'r32float', usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST });
dev.queue.writeTexture({ texture: texR }, texData, { bytesPerRow: W * 16 }, [W * 4, H]);
const ssbo = dev.createBuffer({ size: texData.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
dev.queue.writeBuffer(ssbo, 0, texData);
const ubo = dev.createBuffer({ size: 65536, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
dev.queue.writeBuffer(ubo, 0, texData, 0, 16384);
const out = dev.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.STORAGE });
const params = dev.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const INV = 16384, ITERS = 128;
dev.queue.writeBuffer(params, 0, new Uint32Array([ITERS, 7, 0, 0]));
const HEAD = `
enable subgroups;
struct P { n: u32, s: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var T: texture_2d<f32>;
@group(0) @binding(3) var TR: texture_2d<f32>;
@group(0) @binding(4) var<uniform> U: array<vec4<f32>, 4096>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;`;
const SIG = `@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32)`;
const ACC = 8;
const body = (op: (i: number) => string, vec: boolean) => (U: number) => `${HEAD} ${SIG} {
  let x = Y[g.x] + X[0].x + textureLoad(T, vec2<u32>(0u), 0).x + textureLoad(TR, vec2<u32>(0u), 0).x + U[0].x;
  ${Array.from({ length: ACC }, (_, i) => `var a${i} = ${vec ? 'vec4<f32>' : 'f32'}(f32(${i}) * x);`).join(' ')}
  var pa: array<f32, 16>; for (var i = 0u; i < 16u; i++) { pa[i] = x + f32(i); }
  for (var k = 0u; k < p.n; k++) { let base = k * p.s; ${Array.from({ length: U }, (_, i) => op(i).replaceAll('#', `a${i % ACC}`)).join(' ')} }
  Y[g.x] = ${Array.from({ length: ACC }, (_, i) => (vec ? `dot(a${i}, vec4<f32>(1.0))` : `a${i}`)).join('+')}; }`;
const flat = (op: (i: number) => string, vec: boolean) => (U: number) => `${HEAD} ${SIG} {
  let x = Y[g.x] + X[0].x + textureLoad(T, vec2<u32>(0u), 0).x + textureLoad(TR, vec2<u32>(0u), 0).x + U[0].x;
  ${Array.from({ length: ACC }, (_, i) => `var a${i} = ${vec ? 'vec4<f32>' : 'f32'}(f32(${i}) * x);`).join(' ')}
  for (var k = 0u; k < p.n; k++) { let base = k * p.s; ${Array.from({ length: U }, (_, i) => op(i).replaceAll('#', `a${i % ACC}`)).join(' ')} }
  Y[g.x] = ${Array.from({ length: ACC }, (_, i) => (vec ? `dot(a${i}, vec4<f32>(1.0))` : `a${i}`)).join('+')}; }`;
const tests: Record<string, (U: number) => string> = {
  flat_ssbo_s: (U) => `${HEAD} ${SIG} {
  let x = Y[g.x] + X[0].x + textureLoad(T, vec2<u32>(0u), 0).x + textureLoad(TR, vec2<u32>(0u), 0).x + U[0].x;
  let base = g.x * 7u + p.n;
  var s = 0.0; ${Array.from({ length: U * 16 }, (_, i) => `s += X[(base + ${i * 64}u + li) & 1023u].x;`).join(' ')}
  Y[g.x] = s; }`,
  wg_div: (U) => body((i) => `# += W[(base + ${i * 64}u + li) & 1023u];`, false)(U).replace('@compute', 'var<workgroup> W: array<f32, 1024>;\n@compute').replace('var pa:', 'for (var i = li; i < 1024u; i += 64u) { W[i] = f32(i); } workgroupBarrier(); var pa:'),
  wg_div4: (U) => body((i) => `# += W4[(base + ${i * 64}u + li) & 255u];`, true)(U).replace('@compute', 'var<workgroup> W4: array<vec4<f32>, 256>;\n@compute').replace('var pa:', 'for (var i = li; i < 256u; i += 64u) { W4[i] = vec4<f32>(f32(i)); } workgroupBarrier(); var pa:'),
  fma: body(() => `# = fma(#, x, 1.0001);`, false),
  ssbo_s: body((i) => `# += X[(base + ${i * 64}u + li) & 1023u].x;`, false),
  ssbo_s_uniidx: body((i) => `# += X[(base + ${i * 64}u + wid.x) & 1023u].x;`, false),
  sg_bcast: body((i) => `# += subgroupBroadcast(x, ${i % 8}u);`, false),
  sg_bcast4: body((i) => `# += subgroupBroadcast(a${(i + 1) % 8}, ${i % 8}u);`, true),
  sg_shuffle: body((i) => `# += subgroupShuffle(x, (k + ${i}u) & 7u);`, false),
  priv_dyn: body((i) => `# += pa[(k + ${i}u) & 15u];`, false),
  ssbo_v4: body((i) => `# += X[(base + ${i * 64}u + li) & 1023u];`, true),
  tex_rgba: body((i) => `# += textureLoad(T, vec2<u32>((base + li) & 255u, ${i}u), 0);`, true),
  tex_rgba_row: body((i) => `# += textureLoad(T, vec2<u32>(${i}u, (base + li) & 255u), 0);`, true),
  tex_r: body((i) => `# += textureLoad(TR, vec2<u32>((base + li) & 1023u, ${i}u), 0).x;`, false),
  ubo_v4: body((i) => `# += U[(base + ${i * 64}u + li) & 4095u];`, true),
  ubo_v4_uni: body((i) => `# += U[(base + ${i * 64}u + wid.x) & 4095u];`, true),
};
async function time(name: string, wgsl: string): Promise<number> {
  const module = dev.createShaderModule({ code: wgsl });
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bg = dev.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: params } }, { binding: 1, resource: { buffer: ssbo } },
      { binding: 2, resource: texRGBA.createView() }, { binding: 3, resource: texR.createView() },
      { binding: 4, resource: { buffer: ubo } }, { binding: 5, resource: { buffer: out } },
    ],
  });
  const run = async () => {
    const enc = dev.createCommandEncoder(); const pass = enc.beginComputePass();
    pass.setPipeline(pipeline); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(INV / 64); pass.end();
    dev.queue.submit([enc.finish()]); await dev.queue.onSubmittedWorkDone();
  };
  await run();
  let ms = Infinity;
  for (let r = 0; r < 5; r++) { const c0 = process.cpuUsage(); await run(); const c = process.cpuUsage(c0); ms = Math.min(ms, (c.user + c.system) / 2000); }
  return ms;
}
const batches = (INV / 8) * ITERS;
for (const [name, gen] of Object.entries(tests)) {
  if (process.env.ONLY && !name.includes(process.env.ONLY)) continue;
  const t8 = await time(`${name}8`, gen(8));
  const t40 = await time(`${name}40`, gen(40));
  const per = ((t40 - t8) * 1e6) / batches / 32;
  console.log(`${name.padEnd(13)} ${per.toFixed(3)} ns/op (cpu/2, 8 lanes)  [U8 ${t8.toFixed(1)} ms, U40 ${t40.toFixed(1)} ms]`);
}
dispose();
