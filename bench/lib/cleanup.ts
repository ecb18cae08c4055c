/**
 * Every benchmark registers what it started (servers, temp dirs, databases, child
 * processes) here, so it is torn down on a normal finish, on an exception, and on
 * SIGINT/SIGTERM alike. Tasks run once, newest first, each isolated from the others'
 * failures.
 */
interface Task {
  name: string;
  fn: () => unknown | Promise<unknown>;
}

const tasks: Task[] = [];
let installed = false;
let interruptedBy: string | undefined;

/** True once SIGINT/SIGTERM arrived: the benchmark should stop and write nothing. */
export function interrupted(): boolean {
  return interruptedBy !== undefined;
}

/** Throw if the run was interrupted; call between phases so no new work starts. */
export function checkInterrupted(): void {
  if (interruptedBy) throw new Error(`interrupted by ${interruptedBy}`);
}
let running: Promise<void> | undefined;

/** Register a cleanup; returns a function that runs it now (and unregisters it). */
export function onCleanup(name: string, fn: () => unknown | Promise<unknown>): () => Promise<void> {
  installSignalHandlers();
  const task: Task = { name, fn };
  tasks.push(task);
  return async () => {
    const i = tasks.indexOf(task);
    if (i < 0) return;
    tasks.splice(i, 1);
    await runTask(task);
  };
}

async function runTask(task: Task): Promise<void> {
  try {
    await task.fn();
  } catch (err) {
    process.stderr.write(`cleanup of ${task.name} failed: ${(err as Error).message}\n`);
  }
}

/** Run every registered cleanup, newest first. Safe to call more than once. */
export function runCleanups(): Promise<void> {
  running ??= (async () => {
    while (tasks.length > 0) await runTask(tasks.pop()!);
  })().finally(() => {
    running = undefined;
  });
  return running;
}

function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      interruptedBy = sig;
      process.stderr.write(`\n${sig}: cleaning up ${tasks.length} resource(s)...\n`);
      // A second signal during cleanup kills at once (the default action).
      const hardExit = setTimeout(() => process.exit(1), 30_000);
      hardExit.unref();
      runCleanups()
        .catch((err: unknown) => process.stderr.write(`cleanup failed: ${String(err)}\n`))
        .finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

/**
 * Run a benchmark's main function: cleanups run whatever happens, and the exit code
 * says whether it worked.
 */
export function runMain(main: () => Promise<void>): void {
  installSignalHandlers();
  main()
    .then(
      () => runCleanups(),
      async (err) => {
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 1;
        await runCleanups();
      },
    )
    .finally(() => {
      // Drivers (pg pools, nats, ws) can hold handles past their close; the work is done.
      setTimeout(() => process.exit(), 200).unref();
    });
}
