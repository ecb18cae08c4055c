/**
 * Reads the Prometheus text exposition into a map, so tests check exact numbers:
 * `sample(text, 'pobox_messages_rejected_total', { reason: 'quota' })`.
 */
export type Samples = Map<string, number>;

export function parseProm(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    out.set(m[1]! + normLabels(m[2] ?? ''), Number(m[3]));
  }
  return out;
}

function normLabels(raw: string): string {
  if (raw === '' || raw === '{}') return '';
  const pairs = [...raw.slice(1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((p) => `${p[1]}=${p[2]}`);
  return `{${pairs.sort().join(',')}}`;
}

/** One sample's value; undefined when the series is absent. */
export function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number | undefined {
  const keys = Object.keys(labels).sort();
  const l = keys.length ? `{${keys.map((k) => `${k}=${labels[k]}`).join(',')}}` : '';
  return samples.get(name + l);
}

/** Sum of every series of `name` whose labels include `labels`. */
export function sumOf(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, v] of samples) {
    const brace = key.indexOf('{');
    const n = brace === -1 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const set = new Set(brace === -1 ? [] : key.slice(brace + 1, -1).split(','));
    if (Object.entries(labels).every(([k, val]) => set.has(`${k}=${val}`))) total += v;
  }
  return total;
}
