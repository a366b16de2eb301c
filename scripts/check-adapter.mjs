// Exit 0 when Dawn finds a WebGPU adapter, 1 otherwise (used by bootstrap.sh; prints nothing on success).
// --describe: also print one line, `software|gpu <vendor> / <description>`, naming the adapter Dawn picked.
import { createRequire } from 'node:module';
const require = createRequire(new URL('../packages/tensor/package.json', import.meta.url));
const { create } = await import(require.resolve('webgpu'));
const gpu = create([]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) process.exit(1);
const device = await adapter.requestDevice();
if (process.argv.includes('--describe')) {
  const i = adapter.info;
  const software = i.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(`${i.vendor} ${i.architecture} ${i.device} ${i.description}`);
  console.log(`${software ? 'software' : 'gpu'} ${[i.vendor, i.description || i.device].filter(Boolean).join(' / ')}`);
}
device.destroy();
process.exit(0);
