// The run directory (--out): who may write it, and when. A run never mixes its files into someone else's:
//  - checkRunDir, before anything is loaded: --out must be a directory that is absent, empty, the run being resumed
//    (--resume), or a previous run to replace (--overwrite: only the files a run writes, which it removes);
//  - RunLock, once every input has passed: an exclusive lock file holding the pid, so two `dawngrad train` processes
//    never write one directory (the second is refused); a lock left by a killed process is taken over, with a notice;
//  - writing(): a file-system error while writing becomes one line naming what was being written, where, and the fix.
import { open, link, copyFile, readFile, rename, rm, rmdir, mkdir } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { CHECKPOINT_DIR } from './checkpoint.ts';

/** The lock file: {"pid", "host", "started"} of the process writing the directory. */
export const LOCK_FILE = '.dawngrad.lock';

/** Everything a run writes into its directory: --overwrite removes these and refuses to touch anything else. */
const RUN_ENTRIES = [
  'summary.json', 'metrics.jsonl', 'confusion_before.png', 'confusion_before.svg', 'confusion_after.png', 'confusion_after.svg',
  'loss.png', 'loss.svg', 'adapter-best', 'adapter-last', CHECKPOINT_DIR, LOCK_FILE,
];

/** A run's own file, or a temp / previous version of one (`.checkpoint.tmp-123`, `.summary.json.123.456.tmp`). */
function isRunEntry(name: string): boolean {
  return RUN_ENTRIES.includes(name) || RUN_ENTRIES.some((e) => name.startsWith(`.${e}.`));
}

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

/** The lock's holder, or null when there is no lock; `stale` when it is a process of this machine that is gone. */
export function lockHolder(dir: string): (LockInfo & { stale: boolean }) | null {
  const path = join(dir, LOCK_FILE);
  if (!existsSync(path)) return null;
  let info: LockInfo;
  try {
    info = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
    if (!Number.isInteger(info.pid)) throw new Error('no pid');
  } catch {
    return { pid: 0, host: '', started: '', stale: true }; // a lock its writer was killed while writing
  }
  return { ...info, stale: info.host === hostname() && !alive(info.pid) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, but another user's
  }
}

function inUse(dir: string, h: LockInfo): Error {
  return new Error(
    `--out ${dir} is in use by another dawngrad train (pid ${h.pid}${h.host !== hostname() ? ` on ${h.host}` : ''}, started ${h.started}); ` +
      `wait for it or choose another --out (if no such run is alive, delete ${join(dir, LOCK_FILE)})`,
  );
}

/** What is in a non-empty run directory, for the refusal: a run with a checkpoint, a finished run, or some files. */
function describeContents(dir: string, names: string[]): string {
  try {
    const step = JSON.parse(readFileSync(join(dir, CHECKPOINT_DIR, 'trainer_state.json'), 'utf8')).step;
    if (existsSync(join(dir, 'summary.json'))) return `a finished run (last checkpoint at step ${step})`;
    return `a run that did not finish (checkpoint at step ${step})`;
  } catch {
    return existsSync(join(dir, 'summary.json')) ? 'a finished run' : `${names.length} file(s): ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}`;
  }
}

/**
 * Refuse an --out this run may not write, changing nothing: a file; a directory in use by a live run; a non-empty
 * directory without --resume or --overwrite; with --overwrite, a directory holding files no run writes.
 */
export function checkRunDir(dir: string, o: { resume: boolean; overwrite?: boolean }): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new Error(`--out ${dir} is a file, not a directory: give the directory the run should write`);
  const h = lockHolder(dir);
  if (h && !h.stale && h.pid !== process.pid) throw inUse(dir, h);
  if (o.resume) return; // the checkpoint check follows
  const names = readdirSync(dir).filter((n) => n !== LOCK_FILE).sort();
  if (names.length === 0) return;
  if (!o.overwrite) {
    throw new Error(`--out ${dir} already holds ${describeContents(dir, names)}: --resume continues it, --overwrite replaces it, or choose another --out`);
  }
  const foreign = names.filter((n) => !isRunEntry(n));
  if (foreign.length > 0) {
    throw new Error(`--out ${dir} holds files a run does not write (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}): --overwrite only replaces a previous run; choose another --out`);
  }
}

/** Remove a previous run's files (after checkRunDir with overwrite, under the lock). */
export async function clearRun(dir: string): Promise<void> {
  for (const n of readdirSync(dir)) if (n !== LOCK_FILE && isRunEntry(n)) await rm(join(dir, n), { recursive: true, force: true });
}

/** The exclusive right to write a run directory, held from when the run starts writing until it ends. */
export class RunLock {
  private constructor(
    readonly path: string,
    /** this run made the directory: it goes again on release if the run wrote nothing else */
    private readonly created: boolean,
  ) {}

  /** Create `dir` if needed and take its lock: refused while a live process holds it; a dead holder's lock is taken over. */
  static async acquire(dir: string, log: (line: string) => void): Promise<RunLock> {
    const created = !existsSync(dir);
    await makeDir(dir);
    const path = join(dir, LOCK_FILE);
    const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
    for (let attempt = 0; attempt < 3; attempt++) {
      // written whole under another name, then linked into place: the link is the exclusive create (of two processes
      // exactly one gets here), and nobody ever reads a half-written lock (one that would look like a dead holder's)
      const tmp = `${path}.${process.pid}.tmp`;
      try {
        const fh = await open(tmp, 'w');
        try {
          await fh.writeFile(JSON.stringify(info));
          await fh.sync();
        } finally {
          await fh.close();
        }
        await link(tmp, path).catch((e: NodeJS.ErrnoException) => {
          // a file system without hard links: an exclusive copy (its content may be read half-written)
          if (['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(e.code ?? '')) return copyFile(tmp, path, fsConstants.COPYFILE_EXCL);
          throw e;
        });
        return new RunLock(path, created);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        await rm(tmp, { force: true });
      }
      const h = lockHolder(dir);
      if (h && !h.stale) throw inUse(dir, h);
      // move the dead holder's lock aside (only one process's rename succeeds), then try the exclusive create again
      const aside = `${path}.stale-${process.pid}`;
      if (await rename(path, aside).then(() => true, () => false)) {
        await rm(aside, { force: true });
        log(`--out ${dir}: taking over the lock of dawngrad train pid ${h?.pid || '?'}, which is no longer running`);
      }
    }
    const h = lockHolder(dir);
    throw inUse(dir, h ?? { pid: 0, host: hostname(), started: '?' });
  }

  /** Give the directory back (only a lock that is still ours is removed). */
  async release(): Promise<void> {
    const mine = await readFile(this.path, 'utf8').then((t) => JSON.parse(t).pid === process.pid, () => false);
    if (mine) await rm(this.path, { force: true });
    if (this.created) await rmdir(dirname(this.path)).catch(() => {}); // only when empty: a run that failed before writing
  }
}

/** mkdir -p, one level at a time: Node's recursive mkdir spins forever where a level cannot be made (under /proc). */
async function makeDir(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    await mkdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST' || !statSync(d).isDirectory()) throw e;
    });
  }
}

// What to do about each file-system error while writing a run.
const FS_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device; free some space or choose an --out on another disk',
  EDQUOT: 'the disk quota is exceeded; free some space or choose an --out on another disk',
  EACCES: 'permission denied; make the directory writable or choose another --out',
  EPERM: 'not permitted there; choose another --out',
  EROFS: 'the file system is read-only; choose another --out',
  EEXIST: 'a file is in the way where a directory belongs; choose another --out',
  ENOTDIR: 'a file is in the way where a directory belongs; choose another --out',
};

/**
 * Run `f`, turning a file-system error into one line: what was being written (`what`, e.g. "the checkpoint in DIR"),
 * what went wrong and what to do. Anything else passes through unchanged.
 */
export async function writing<T>(what: string, f: () => Promise<T>, resumable = false): Promise<T> {
  try {
    return await f();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // some writers rewrap errors, keeping Node's "ENOSPC: ..." in the message but not the code
    const code = err.code ?? /\b(E[A-Z]{3,})\b/.exec(err.message ?? '')?.[1];
    const fix = code ? FS_ERRORS[code] : undefined;
    if (!fix) throw e;
    throw new Error(`writing ${what}: ${fix}${resumable ? ' (then --resume: the last checkpoint is intact)' : ''} (${code})`);
  }
}
