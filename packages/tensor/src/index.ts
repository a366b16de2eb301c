// @dawngrad/tensor: tensors on Dawn WebGPU, their kernels, and a float64 CPU reference of every kernel.
export { init, dispose, rt, grid, Runtime, type Kernel, type Dispatch, type RuntimeStats, type RuntimeObserver } from './runtime.ts';
export {
  getGpu, onDeviceLost, setDawnToggles, dawnToggles, parseToggles, nvidiaGpuVisible, classifyAdapter, pickAdapter, wantedFeatures, nodeApi,
  SOFTWARE_WHILE_GPU_FIX, type GpuContext, type DeviceInfo, type AdapterClass, type SubgroupMatrixConfig, type Platform, type NodeApi,
} from './device.ts';
export { BufferPool, sizeClass, LARGER_CLASS_LIMIT, type PoolStats } from './pool.ts';
export { Tensor, scope, keep, numel, BYTES, type DType, type Shape, type HostArray } from './tensor.ts';
export * from './kernels/elementwise.ts';
export * from './kernels/reduce.ts';
export * from './kernels/softmax.ts';
export * from './kernels/gather.ts';
export * from './kernels/layout.ts';
export * from './kernels/misc.ts';
export * from './kernels/matmul.ts';
export { GEMM_TILES, kernelPolicy, gemmTileFor, shapeClass, setTunedTile, describePolicy, type KernelPolicy, type GemmChoice, type AttentionKernels } from './policy.ts';
export { tuneMatmul, tunedTable, loadTuned, type TuneShape, type TuneResult } from './tune.ts';
export { defineKernel, kernelFor, treeReduce, flatIndex, range, NEG_INF, ROUND_F16, type KernelDef, type KernelSpec, type KernelBody, type ParamType, type BindingDecl } from './kernel.ts';
export type { GemmTile } from './kernels/matmul-gpu.ts';
export * from './kernels/finite.ts';
export { startProfile, stopProfile, profile, profiling, formatProfile, type ProfileReport, type KernelProfile, type ProfileOptions } from './profile.ts';
export * from './kernels/attention-decode.ts';
export * as ref from './cpu/index.ts';
export { mulberry32, type Rng } from './random.ts';
