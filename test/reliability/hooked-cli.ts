// The dawngrad CLI with TrainHooks set from the environment: how the reliability tests stop a run at an exact point
// or poison it, without a test-only branch in the trainer. Run as the CLI is (`node --import tsx hooked-cli.ts train …`):
//   DAWNGRAD_TEST_NAN_BEFORE_STEP=k    write a NaN into the first LoRA parameter just before step k
//   DAWNGRAD_TEST_KILL_BEFORE_STEP=k   SIGKILL this process just before step k (a kill in the middle of training)
//   DAWNGRAD_TEST_KILL_AFTER_CHECKPOINT=k  SIGKILL it right after the checkpoint of step k is on disk
import { rt } from '@dawngrad/tensor';
import type { TrainHooks } from '../../packages/train/src/trainer.ts';
import { runCli } from '../../packages/train/src/cli/run.ts';

const step = (name: string): number | null => {
  const v = process.env[name];
  return v ? Number(v) : null;
};
const nanAt = step('DAWNGRAD_TEST_NAN_BEFORE_STEP');
const killAt = step('DAWNGRAD_TEST_KILL_BEFORE_STEP');
const killAfter = step('DAWNGRAD_TEST_KILL_AFTER_CHECKPOINT');

const trainHooks: TrainHooks = {
  async beforeStep(k, lora) {
    if (k === killAt) {
      await rt().sync(); // the previous step's work is done: the kill lands between steps, as a real one may
      process.kill(process.pid, 'SIGKILL');
    }
    if (k === nanAt) {
      const p = lora.parameters()[0]!.data; // element 0 of the first factor becomes NaN
      const v = (await p.toArray()) as Float32Array;
      v[0] = NaN;
      p.write(v);
    }
  },
  afterCheckpoint(k) {
    if (k === killAfter) process.kill(process.pid, 'SIGKILL');
  },
};

runCli(process.argv.slice(2), { trainHooks }).then((code) => process.exit(code));
