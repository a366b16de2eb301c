// GPU setup without a GPU: scripts/gpu/nvidia.sh's detection on fake machines (a temp folder standing in for /), and
// bootstrap.sh's NVIDIA branch with fake dpkg-query / apt-get / id first on PATH: it installs Debian's Vulkan loader and
// glvnd packages — never lavapipe — and then asks Dawn, which either finds no adapter (a broken ICD file: a clear error)
// or one (here lavapipe's ICD file renamed nvidia_icd.json: a warning that Dawn picked a software adapter).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO } from './shared.ts';

const NVIDIA_SH = join(REPO, 'scripts/gpu/nvidia.sh');
const LOADER = ['libvulkan1', 'libglvnd0', 'libegl1', 'libgl1', 'libglx0', 'libopengl0', 'libgles2'];
let tmp: string;
let n = 0;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dawngrad-gpu-setup-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A fake machine root holding the given files (path → content; an `x:` prefix makes it executable). */
function fakeRoot(files: Record<string, string>): string {
  const root = join(tmp, `root${n++}`);
  mkdirSync(root);
  for (const [p, content] of Object.entries(files)) {
    const f = join(root, p);
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, content.replace(/^x:/, ''));
    if (content.startsWith('x:')) chmodSync(f, 0o755);
  }
  return root;
}

const probe = (root: string) => spawnSync('bash', [NVIDIA_SH, 'probe', root], { encoding: 'utf8' });

describe('scripts/gpu/nvidia.sh probe', () => {
  it('sees no NVIDIA GPU on a machine without its traces, even with other vendors’ ICD files', () => {
    const r = probe(fakeRoot({ 'usr/share/vulkan/icd.d/lvp_icd.json': '{}', 'dev/null': '', 'usr/bin/true': 'x:' }));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
  });

  it('sees one by its device node, its nvidia-smi, or its ICD file', () => {
    const dev = probe(fakeRoot({ 'dev/nvidia0': '' }));
    expect(dev.status).toBe(0);
    expect(dev.stdout).toMatch(/^found device node .*\/dev\/nvidia0$/m);
    const ctl = probe(fakeRoot({ 'dev/nvidiactl': '' }));
    expect(ctl.status).toBe(0);
    const smi = probe(fakeRoot({ 'usr/local/nvidia/bin/nvidia-smi': 'x:#!/bin/sh\n' }));
    expect(smi.status).toBe(0);
    expect(smi.stdout).toMatch(/^found nvidia-smi at .*\/usr\/local\/nvidia\/bin\/nvidia-smi$/m);
    // not executable: not a command
    expect(probe(fakeRoot({ 'usr/bin/nvidia-smi': '' })).status).toBe(1);
  });

  it("names the ICD file, also under the driver's own prefix where the loader does not look", () => {
    const root = fakeRoot({ 'usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json': '{}' });
    const r = probe(root);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`icd ${root}/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json`);
    // a standard folder wins over the container prefix (it is the one the loader would read anyway)
    const both = fakeRoot({ 'usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json': '{}', 'etc/vulkan/icd.d/nvidia_icd.json': '{}' });
    expect(probe(both).stdout).toContain(`icd ${both}/etc/vulkan/icd.d/nvidia_icd.json`);
  });
});

describe('bootstrap.sh on a machine with an NVIDIA GPU', () => {
  /** Fake dpkg-query (nothing installed), apt-get (logs its arguments) and id (root), first on PATH. */
  function fakeTools(): { bin: string; log: string } {
    const bin = join(tmp, `bin${n++}`);
    const log = join(bin, 'apt.log');
    mkdirSync(bin);
    const tool = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    tool('dpkg-query', 'exit 1');
    tool('apt-get', `echo "apt-get $*" >> ${log}`);
    tool('id', 'echo 0');
    return { bin, log };
  }
  const bootstrap = (root: string, bin: string) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, DAWNGRAD_NVIDIA_ROOT: root };
    delete env.VK_DRIVER_FILES; // bootstrap sets it from the ICD file it finds
    return spawnSync('bash', [join(REPO, 'scripts/bootstrap.sh')], { encoding: 'utf8', env, timeout: 120_000 });
  };

  it('installs the loader packages, never lavapipe, and refuses when Dawn cannot load the driver', () => {
    const root = fakeRoot({ 'dev/nvidia0': '', 'usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json': JSON.stringify({
      file_format_version: '1.0.0', ICD: { library_path: '/nonexistent/libGLX_nvidia.so.0', api_version: '1.3.0' } }) });
    const { bin, log } = fakeTools();
    const r = bootstrap(root, bin);
    const apt = readFileSync(log, 'utf8');
    expect(apt).toMatch(new RegExp(`^apt-get install .*${LOADER.join(' ')}$`, 'm'));
    expect(apt).not.toMatch(/mesa|lavapipe/);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bootstrap: an NVIDIA GPU is visible but Dawn finds no Vulkan adapter \(the ICD file .*nvidia_icd\.json did not load\)/);
  });

  it('warns when Dawn picks a software adapter although the GPU is visible', () => {
    const lvp = '/usr/share/vulkan/icd.d/lvp_icd.json';
    if (!existsSync(lvp)) return; // lavapipe installed elsewhere: the stand-in driver is not at hand
    const root = fakeRoot({ 'dev/nvidia0': '' });
    mkdirSync(join(root, 'etc/vulkan/icd.d'), { recursive: true });
    copyFileSync(lvp, join(root, 'etc/vulkan/icd.d/nvidia_icd.json')); // lavapipe posing as NVIDIA's driver
    const { bin } = fakeTools();
    const r = bootstrap(root, bin);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/bootstrap: NVIDIA GPU visible \(device node .*\/dev\/nvidia0\)/);
    expect(r.stderr).toMatch(/warning: Dawn picked a software adapter \(mesa \/ llvmpipe.*\) although an NVIDIA GPU is visible/);
  });
});
