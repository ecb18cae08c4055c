/** Output of the admin commands: aligned tables for people, JSON for scripts. */
// Every id is ASCII (src/core/ids.ts), so string length is display width.
const stringWidth = (s: string): number => s.length;

export type Cell = string | number | boolean | null | undefined;

/** Render rows as a plain aligned table with a header line. */
export function table(header: string[], rows: Cell[][]): string {
  const text = [header, ...rows.map((r) => r.map(cellText))];
  const widths = header.map((_, i) => Math.max(...text.map((r) => stringWidth(r[i] ?? ''))));
  const line = (r: string[]) =>
    r
      .map((c, i) => c + ' '.repeat(widths[i]! - stringWidth(c)))
      .join('  ')
      .trimEnd();
  return [line(text[0]!), line(widths.map((w) => '-'.repeat(w))), ...text.slice(1).map(line)].join('\n') + '\n';
}

/** Two columns: a label and its value. */
export function keyValues(pairs: Array<[string, Cell]>): string {
  const w = Math.max(...pairs.map(([k]) => stringWidth(k)));
  return pairs.map(([k, v]) => `${k}${' '.repeat(w - stringWidth(k))}  ${cellText(v)}`).join('\n') + '\n';
}

function cellText(v: Cell): string {
  if (v === null || v === undefined) return '-';
  return String(v);
}

export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function humanAge(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Write JSON (one document, newline-terminated) or the human text. */
export function emit(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human());
}
