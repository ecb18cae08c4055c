/**
 * A helper process (DynamoDB Local's JVM) that must not outlive the test process that
 * started it. The child is spawned `detached` (it then leads its own process group), and
 * everything here signals the whole group, so whatever it started goes with it.
 *
 * When this process ends: an 'exit' handler kills the group synchronously. A process
 * killed by a signal it does not handle (SIGKILL from a harness, SIGTERM when run
 * without the test runner) runs no handler, so a watchdog covers that case: a small `sh`
 * in its own session reading a pipe whose only writer is this process. The kernel closes
 * the pipe when this process dies, however it dies; the watchdog's read then ends and it
 * kills the group. It is killed itself once the child has exited.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface GroupGuard {
  /** Signal the child's whole process group; nothing if it is gone already. */
  signal(sig: NodeJS.Signals): void;
}

// $1: the process group. The loop ends at EOF: the parent holding the pipe's other end is gone.
const WATCHDOG = 'while read -r _; do :; done; kill -9 "-$1" 2>/dev/null';

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Keep `child` (spawned with `detached: true`) and its process group from outliving this process. */
export function guardProcessGroup(child: ChildProcess): GroupGuard {
  const pgid = child.pid;
  if (pgid === undefined) throw new Error('the child was not started (no pid)');
  const watchdog = spawn('sh', ['-c', WATCHDOG, 'pobox-group-watchdog', String(pgid)], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  // Neither the watchdog nor its pipe may keep this process alive.
  watchdog.unref();
  watchdog.on('error', (err) => process.emitWarning(`no watchdog for process group ${pgid} (a SIGKILL of this process would leave it running): ${err.message}`));
  watchdog.stdin?.on('error', () => undefined);
  (watchdog.stdin as { unref?: () => void } | null)?.unref?.();
  const killOnExit = (): void => signalGroup(pgid, 'SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => {
    process.removeListener('exit', killOnExit);
    // Whatever the child started goes with it (the id stays a group's while any member lives).
    signalGroup(pgid, 'SIGKILL');
    // The watchdog's work is done; left running, it would one day signal a reused id.
    watchdog.kill('SIGKILL');
  });
  return { signal: (sig) => signalGroup(pgid, sig) };
}
