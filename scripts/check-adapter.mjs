// Exit 0 when Dawn finds a WebGPU adapter, 1 otherwise (used by bootstrap.sh; prints nothing on success).
import { createRequire } from 'node:module';
const require = createRequire(new URL('../packages/tensor/package.json', import.meta.url));
const { create } = await import(require.resolve('webgpu'));
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) process.exit(1);
const device = await adapter.requestDevice();
device.destroy();
process.exit(0);
