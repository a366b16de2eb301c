// @dawngrad/autograd: reverse-mode autodiff over @dawngrad/tensor. Each op family keeps its forward, backward and
// float64 CPU twins in one file; `registry` lists every differentiable op with its gradient rule.
export { Var, param, constant, noGrad, isGradEnabled, type BackwardFn } from './var.ts';
export { defineOp, apply, registry, type OpDef, type F64, type BackwardCtx, type CpuBackwardCtx, type ForwardResult } from './op.ts';
export { backward, zeroGrad, type BackwardOptions } from './backward.ts';
export { detectAnomaly, anomalyDetection, checkAnomalies, checkFinite, AnomalyError } from './anomaly.ts';
export * from './ops/elementwise.ts';
export * from './ops/matmul.ts';
export * from './ops/linear.ts';
export * from './ops/attention.ts';
export * from './ops/reduce.ts';
export * from './ops/shape.ts';
export * from './ops/rmsnorm.ts';
export * from './ops/softmax.ts';
export * from './ops/embedding.ts';
export * from './ops/dropout.ts';
export * from './ops/rope.ts';
export * from './ops/swiglu.ts';
export * from './ops/loss.ts';
