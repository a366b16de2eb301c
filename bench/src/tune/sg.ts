// Matmul kernel variants tried on lavapipe, on a device of its own: subgroup-broadcast register tiles (TM rows × CG
// column groups per subgroup, workgroup size, K unroll), a workgroup-memory B tile (slower: barriers), B from a
// uniform buffer (faster: vector gathers), and the 4×4 register-block baseline. NN layout, interior sizes only.
//   M=512 N=512 K=512 CFG='0;8,1,8,1;16,1,64,1;-8,16,0;99' pnpm exec tsx bench/src/tune/sg.ts
//   CFG entries: TM,CG,WG,KU (subgroup tile) | 0 (baseline) | -S,KT,unrolled (shared B) | 99 (uniform B, K·N ≤ 16384)
//   | 98 (A from a uniform buffer too: timing only, its A indices wrap at 64 KiB so its results are wrong)
//   | 97 (only subgroup-uniform addresses, each lane selecting its columns of B)
import { init, dispose } from '@dawngrad/tensor';
const r = await init();
const dev = await (await r.ctx.gpu.requestAdapter())!.requestDevice({ requiredFeatures: ['subgroups' as GPUFeatureName] });
dev.addEventListener('uncapturederror', (e) => { console.error(String((e as GPUUncapturedErrorEvent).error.message).slice(0, 400)); process.exit(1); });
const M = Number(process.env.M ?? 1024), N = Number(process.env.N ?? 1024), K = Number(process.env.K ?? 1024);
const a = new Float32Array(M * K).map(() => Math.random() - 0.5);
const b = new Float32Array(K * N).map(() => Math.random() - 0.5);
const buf = (d: Float32Array | null, n: number) => {
  const x = dev.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  if (d) dev.queue.writeBuffer(x, 0, d);
  return x;
};
const A = buf(a, M * K), B = buf(b, K * N), C = buf(null, M * N);
const P = dev.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
dev.queue.writeBuffer(P, 0, new Uint32Array([M, N, K, 0]));

// lane l of a subgroup owns columns n0 + 32c + 4l .. +3 (c < CG) and all TM rows m0 .. m0+TM-1.
// the bindings every variant below shares: sizes, A and B as vec4 rows, C
const HEADER = `enable subgroups;
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;`;

function sgKernel(TM: number, CG: number, WG: number, KU: number) {
  const rows = [...Array(TM).keys()], cgs = [...Array(CG).keys()], ag = [...Array(TM / 8).keys()];
  const kstep = (kk: number) => `
    {
      let kq = k4 + ${kk}u;
      ${ag.map((i) => `let av${i} = A[(m0 + ${i * 8}u + sl) * K4 + kq];`).join('\n      ')}
      ${[0, 1, 2, 3].map((j) => cgs.map((c) => `let b${j}_${c} = B[(kq * 4u + ${j}u) * N4 + nb + ${c * 8}u];`).join(' ')).join('\n      ')}
      ${rows
        .map((rr) => `{ ${[0, 1, 2, 3].map((j) => `let s${j} = subgroupBroadcast(av${rr >> 3}.${'xyzw'[j]}, ${rr & 7}u);`).join(' ')}
        ${cgs.map((c) => `acc${rr}_${c} = fma(vec4<f32>(s3), b3_${c}, fma(vec4<f32>(s2), b2_${c}, fma(vec4<f32>(s1), b1_${c}, fma(vec4<f32>(s0), b0_${c}, acc${rr}_${c}))));`).join(' ')} }`)
        .join('\n      ')}
    }`;
  return `${HEADER}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let sg = li / 8u;
  let K4 = p.K / 4u; let N4 = p.N / 4u;
  let m0 = wid.y * ${TM}u;
  let nb = (wid.x * ${WG / 8}u + sg) * ${8 * CG}u + sl; // vec4 column index of this lane's first group
  ${rows.map((rr) => cgs.map((c) => `var acc${rr}_${c} = vec4<f32>();`).join(' ')).join('\n  ')}
  for (var k4 = 0u; k4 < K4; k4 += ${KU}u) {${[...Array(KU).keys()].map(kstep).join('')}
  }
  ${rows.map((rr) => cgs.map((c) => `C[(m0 + ${rr}u) * N4 + nb + ${c * 8}u] = acc${rr}_${c};`).join(' ')).join('\n  ')}
}`;
}

// Uniform loads only: A's 8 rows and B's 32 columns are read at addresses every lane shares (lavapipe loads those
// once for the subgroup, without its per-lane bounds checks); each lane then keeps its own 4 columns of B by select.
function sgUniformLoads() {
  const rows = [...Array(8).keys()];
  return `${HEADER}
@compute @workgroup_size(8) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
  let K4 = p.K / 4u; let N4 = p.N / 4u;
  let m0 = wid.y * 8u;
  let nb0 = wid.x * 8u; // the subgroup's first vec4 column
  ${rows.map((r) => `var acc${r} = vec4<f32>();`).join(' ')}
  for (var kq = 0u; kq < K4; kq++) {
    ${rows.map((r) => `let a${r} = A[(m0 + ${r}u) * K4 + kq];`).join(' ')}
    ${[0, 1, 2, 3].map((j) => `var b${j} = B[(kq * 4u + ${j}u) * N4 + nb0];
    ${[1, 2, 3, 4, 5, 6, 7].map((l) => `b${j} = select(b${j}, B[(kq * 4u + ${j}u) * N4 + nb0 + ${l}u], sl == ${l}u);`).join(' ')}`).join('\n    ')}
    ${rows.map((r) => [0, 1, 2, 3].map((j) => `acc${r} = fma(vec4<f32>(a${r}.${'xyzw'[j]}), b${j}, acc${r});`).join(' ')).join('\n    ')}
  }
  ${rows.map((r) => `C[(m0 + ${r}u) * N4 + nb0 + sl] = acc${r};`).join(' ')}
}`;
}

function base4x4() {
  return `struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;
@compute @workgroup_size(8, 8) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let m = g.y * 4u;
  let K4 = p.K / 4u; let N4 = p.N / 4u;
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < K4; k++) {
    let a0 = A[(m + 0u) * K4 + k]; let a1 = A[(m + 1u) * K4 + k]; let a2 = A[(m + 2u) * K4 + k]; let a3 = A[(m + 3u) * K4 + k];
    let b0 = B[(k * 4u + 0u) * N4 + g.x]; let b1 = B[(k * 4u + 1u) * N4 + g.x]; let b2 = B[(k * 4u + 2u) * N4 + g.x]; let b3 = B[(k * 4u + 3u) * N4 + g.x];
    acc[0] += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
    acc[1] += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
    acc[2] += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
    acc[3] += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
  }
  for (var i = 0u; i < 4u; i++) { C[(m + i) * N4 + g.x] = acc[i]; }
}`;
}

// shared-B: a workgroup of S subgroups shares a KT x 32 tile of B in workgroup memory; A rows via subgroup broadcast.
function sgShared(S: number, KT: number, unroll: boolean) {
  const WG = S * 8, rows = [...Array(8).keys()];
  const fill = (KT * 8) / WG;
  const step = (kk: string) => `{
      let av = A[(m0 + sl) * K4 + k0 / 4u + ${kk}];
      ${[0, 1, 2, 3].map((j) => `let b${j} = Bs[(${kk} * 4u + ${j}u) * 8u + sl];`).join(' ')}
      ${rows.map((r) => `acc${r} = fma(vec4<f32>(subgroupBroadcast(av.w, ${r}u)), b3, fma(vec4<f32>(subgroupBroadcast(av.z, ${r}u)), b2, fma(vec4<f32>(subgroupBroadcast(av.y, ${r}u)), b1, fma(vec4<f32>(subgroupBroadcast(av.x, ${r}u)), b0, acc${r}))));`).join('\n      ')}
    }`;
  return `${HEADER}
var<workgroup> Bs: array<vec4<f32>, ${KT * 8}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let sg = li / 8u;
  let K4 = p.K / 4u; let N4 = p.N / 4u;
  let m0 = wid.y * ${WG}u + sg * 8u;
  let nb = wid.x * 8u;
  ${rows.map((r) => `var acc${r} = vec4<f32>();`).join(' ')}
  for (var k0 = 0u; k0 < p.K; k0 += ${KT}u) {
    ${[...Array(fill).keys()].map((j) => `{ let i = li + ${j * WG}u; Bs[i] = B[(k0 + i / 8u) * N4 + nb + i % 8u]; }`).join('\n    ')}
    workgroupBarrier();
    ${unroll ? [...Array(KT / 4).keys()].map((kk) => step(`${kk}u`)).join('\n    ') : `for (var kk = 0u; kk < ${KT / 4}u; kk++) ${step('kk')}`}
    workgroupBarrier();
  }
  ${rows.map((r) => `C[(m0 + ${r}u) * N4 + nb + sl] = acc${r};`).join(' ')}
}`;
}

// B from a uniform buffer (lavapipe gathers UBO reads with vector instructions, no per-lane branches): B must fit 64 KiB.
// uboA: A too (does A's storage load bound the kernel? measured: no, 2026-12-04, see bench/README.md).
function sgUbo(KU = 1, TM = 8, uboA = false) {
  const rows = [...Array(TM).keys()];
  return `enable subgroups;
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<${uboA ? 'uniform' : 'storage, read'}> A: ${uboA ? 'array<vec4<f32>, 4096>' : 'array<vec4<f32>>'};
@group(0) @binding(2) var<uniform> B: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<storage, read_write> C: array<vec4<f32>>;
@compute @workgroup_size(8) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
  let K4 = p.K / 4u; let N4 = p.N / 4u;
  let m0 = wid.y * ${TM}u;
  let nb = wid.x * 8u + sl;
  ${rows.map((r) => `var acc${r} = vec4<f32>();`).join(' ')}
  for (var q0 = 0u; q0 < K4; q0 += ${KU}u) {${[...Array(KU).keys()].map((u) => `
    {
    let q = q0 + ${u}u;
    ${[...Array(TM / 8).keys()].map((h) => `let av${h} = A[${uboA ? '(' : ''}(m0 + ${h * 8}u + sl) * K4 + q${uboA ? ') & 4095u' : ''}];`).join(' ')}
    ${[0, 1, 2, 3].map((j) => `let b${j} = B[(q * 4u + ${j}u) * N4 + nb];`).join(' ')}
    ${rows.map((r) => [0, 1, 2, 3].map((j) => `acc${r} = fma(vec4<f32>(subgroupBroadcast(av${r >> 3}.${'xyzw'[j]}, ${r & 7}u)), b${j}, acc${r});`).join(' ')).join('\n    ')}
    }`).join('')}
  }
  ${rows.map((r) => `C[(m0 + ${r}u) * N4 + nb] = acc${r};`).join(' ')}
}`;
}

interface Prepared { name: string; go: () => Promise<void>; cpu: number; wall: number }
const BU = dev.createBuffer({ size: 65536, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
if (K * N <= 16384) dev.queue.writeBuffer(BU, 0, b);
const BU2 = dev.createBuffer({ size: 65536, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
async function prepare(name: string, wgsl: string, wg: [number, number], ubo = false, uboA = false): Promise<Prepared> {
  const t0 = performance.now();
  const module = dev.createShaderModule({ code: wgsl });
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bg = dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [P, uboA ? BU2 : A, ubo ? BU : B, C].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const go = async () => {
    const enc = dev.createCommandEncoder(); const pass = enc.beginComputePass();
    pass.setPipeline(pipeline); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(...wg); pass.end();
    dev.queue.submit([enc.finish()]); await dev.queue.onSubmittedWorkDone();
  };
  await go();
  const rb = dev.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const enc = dev.createCommandEncoder(); enc.copyBufferToBuffer(C, 0, rb, 0, M * N * 4); dev.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ); const out = new Float32Array(rb.getMappedRange().slice(0)); rb.unmap(); rb.destroy();
  let err = 0;
  for (let t = 0; t < 50; t++) {
    const i = (t * 97) % M, j = (t * 389 + 7) % N; let s = 0;
    for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
    err = Math.max(err, Math.abs(out[i * N + j]! - s));
  }
  console.log(`${name.padEnd(24)} compile ${(performance.now() - t0).toFixed(0)} ms, err ${err.toExponential(1)}`);
  return { name, go, cpu: Infinity, wall: Infinity };
}

const configs = (process.env.CFG ?? '8,1,64,1').split(';').map((s) => s.split(',').map(Number));
const prepared: Prepared[] = [];
for (const [TM, CG, WG, KU] of configs) {
  if (TM === 97) { prepared.push(await prepare('sg uniform loads', sgUniformLoads(), [N / 32, M / 8])); continue; }
  if (TM === 98) { prepared.push(await prepare(`sg ubo-AB`, sgUbo(1, 8, true), [N / 32, M / 8], true, true)); continue; }
  if (TM === 99) { prepared.push(await prepare(`sg ubo-B ku${CG ?? 1} tm${WG ?? 8}`, sgUbo(CG ?? 1, WG ?? 8), [N / 32, M / (WG ?? 8)], true)); continue; }
  if (TM < 0) { const S = -TM, KT = CG, un = WG === 1; prepared.push(await prepare(`shB s${S} kt${KT}${un ? ' unrolled' : ''}`, sgShared(S, KT, un), [N / 32, M / (8 * S)])); continue; }
  if (TM === 0) { prepared.push(await prepare('base4x4', base4x4(), [N / 32, M / 32])); continue; }
  const cols = (WG / 8) * 32 * CG;
  if (M % TM || N % cols) { console.log(`skip ${TM},${CG},${WG}`); continue; }
  prepared.push(await prepare(`sg tm${TM} cg${CG} wg${WG} ku${KU}`, sgKernel(TM, CG, WG, KU), [N / cols, M / TM]));
}
const rounds = Number(process.env.ROUNDS ?? 10);
for (let r = 0; r < rounds; r++) {
  for (const p of prepared) {
    const c0 = process.cpuUsage(), w0 = performance.now();
    await p.go();
    const c = process.cpuUsage(c0);
    p.cpu = Math.min(p.cpu, (c.user + c.system) / 2000); p.wall = Math.min(p.wall, performance.now() - w0);
  }
}
const gf = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(2);
for (const p of prepared) console.log(`${p.name.padEnd(24)} min cpu/2 ${p.cpu.toFixed(1).padStart(7)} ms ${gf(p.cpu).padStart(6)} GF/s | min wall ${p.wall.toFixed(1).padStart(7)} ms ${gf(p.wall).padStart(6)} GF/s`);
dispose();
