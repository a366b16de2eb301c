// Peer: webgpu-torch 0.3.5 (PyTorch-like tensors on WebGPU), on the same Dawn adapter (its own device). It has mm
// (contiguous 2-D operands only, so transposed cases get a pre-transposed copy) and whole-tensor sum; no softmax.
import { create, globals } from 'webgpu';

type Torch = typeof import('webgpu-torch');
export interface TorchPeer {
  torch: Torch;
  /** a float32 tensor on the WebGPU device */
  tensor(data: Float32Array, shape: number[]): InstanceType<Torch['Tensor']>;
  sync(): Promise<void>;
}

let peer: Promise<TorchPeer | null> | null = null;

export function webgpuTorch(log: (line: string) => void): Promise<TorchPeer | null> {
  peer ??= (async () => {
    try {
      Object.assign(globalThis, globals);
      const g = globalThis as { navigator?: { gpu?: GPU } };
      if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]) }, configurable: true });
      const torch = (await import('webgpu-torch')) as Torch;
      const logFn = console.log;
      console.log = () => {}; // it prints the whole device object on start
      try {
        if (!(await torch.initWebGPUAsync())) throw new Error('initWebGPUAsync found no device');
      } finally {
        console.log = logFn;
      }
      // only nested arrays make a WebGPU tensor (the {data, shape} spec form and typed arrays are refused)
      const nested = (data: Float32Array, shape: number[]) =>
        shape.length === 1 ? Array.from(data) : Array.from({ length: shape[0]! }, (_, r) => Array.from(data.subarray(r * shape[1]!, (r + 1) * shape[1]!)));
      const tensor = (data: Float32Array, shape: number[]) => torch.tensor(nested(data, shape), 'float32', 'webgpu');
      const device = (tensor(new Float32Array(1), [1]).device as unknown as { gpuDevice: GPUDevice }).gpuDevice;
      return {
        torch,
        tensor,
        sync: () => device.queue.onSubmittedWorkDone(),
      };
    } catch (e) {
      log(`webgpu-torch peer unavailable: ${(e as Error).message}`);
      return null;
    }
  })();
  return peer;
}
