// Peer: TensorFlow.js with its WebGPU backend, on the same Dawn adapter as ours (its own device, from webgpu's create()).
// tfjs looks for navigator.gpu when its backend module loads, so navigator is set before the dynamic import.
import { create, globals } from 'webgpu';

type Tf = typeof import('@tensorflow/tfjs-core');
export interface TfjsPeer {
  tf: Tf;
  /** submit what tfjs queued and wait for the device */
  sync(): Promise<void>;
  version: string;
}

let peer: Promise<TfjsPeer | null> | null = null;

/** The tfjs peer, or null (with a printed reason) when it cannot start. */
export function tfjs(log: (line: string) => void): Promise<TfjsPeer | null> {
  peer ??= (async () => {
    try {
      Object.assign(globalThis, globals);
      const g = globalThis as { navigator?: { gpu?: GPU } };
      if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]) }, configurable: true });
      const tf = await import('@tensorflow/tfjs-core');
      await import('@tensorflow/tfjs-backend-webgpu');
      const warn = console.warn;
      console.warn = () => {}; // tfjs advertises tfjs-node on every start
      try {
        if (!(await tf.setBackend('webgpu'))) throw new Error('setBackend(webgpu) returned false');
        await tf.ready();
      } finally {
        console.warn = warn;
      }
      tf.env().set('WEBGPU_CPU_FORWARD', false); // small inputs must not go to a CPU backend
      const backend = tf.backend() as unknown as { commandEncoder: GPUCommandEncoder | null; endComputePassEncoder(): void; submitQueue(): void; queue: GPUQueue };
      return {
        tf,
        version: tf.version_core,
        async sync() {
          // what tfjs does before a readback: close its open pass, submit its encoder
          if (backend.commandEncoder) {
            backend.endComputePassEncoder();
            backend.submitQueue();
          }
          await backend.queue.onSubmittedWorkDone();
        },
      };
    } catch (e) {
      log(`tfjs peer unavailable: ${(e as Error).message}`);
      return null;
    }
  })();
  return peer;
}
