// The float64 CPU reference of every kernel: exported as the `ref` namespace of @dawngrad/tensor (`ref.softmax(x)`).
// It is the oracle of the kernel tests and of autograd's gradient tests.
export * from './array.ts';
export * from './half.ts';
export * from './convert.ts';
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './softmax.ts';
export * from './gather.ts';
export * from './layout.ts';
export * from './misc.ts';
export * from './matmul.ts';
export * from './attention-decode.ts';
