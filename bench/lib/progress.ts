/**
 * Progress for long runs: a cli-progress bar on a terminal, and a line every few
 * seconds otherwise (CI logs, `npm run bench > log`), so a long run never looks hung.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  tick(n?: number): void;
  /** Change the label shown (e.g. the phase). */
  label(text: string): void;
  stop(): void;
}

export function progress(label: string, total: number): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: '{label} [{bar}] {percentage}% {value}/{total} eta {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { label: label.padEnd(34) });
    return {
      tick: (n = 1) => bar.increment(n),
      label: (text) => bar.update({ label: text.padEnd(34) }),
      stop: () => bar.stop(),
    };
  }
  let done = 0;
  let current = label;
  let last = Date.now();
  const t0 = last;
  process.stderr.write(`${current}: 0/${total}\n`);
  return {
    tick: (n = 1) => {
      done += n;
      const now = Date.now();
      if (now - last >= 5000) {
        last = now;
        process.stderr.write(`${current}: ${done}/${total} (${((now - t0) / 1000).toFixed(0)}s)\n`);
      }
    },
    label: (text) => {
      current = text;
    },
    stop: () => process.stderr.write(`${current}: done ${done}/${total} in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`),
  };
}

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}
