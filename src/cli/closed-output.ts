/**
 * A reader of our stdout or stderr that went away (`pobox serve 2>&1 | head -3`) makes the
 * next write there fail with EPIPE. That is no fault of the server: nothing more is written
 * there (pino turns its logging off the same way, src/gateway/logger.ts) and it goes on
 * serving; SIGTERM still shuts it down. Left alone, the stream's error would be an uncaught
 * exception, and crash-only would take a healthy server down for a closed terminal pipe.
 * Any other error on these streams is still thrown (crash-only handles it).
 */
const GONE = new Set(['EPIPE', 'ERR_STREAM_DESTROYED']);

export function survivePipeReadersGone(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (!GONE.has(err.code ?? '')) throw err;
    });
  }
}
