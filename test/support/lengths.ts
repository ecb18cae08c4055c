/**
 * Body lengths for byte round-trip tests: every length up to `dense`, the edges around
 * `limit` and `max`, around powers of two, and random lengths each with its two
 * neighbours (so each of base64's three byte-to-padding cases is met at every size).
 * Deterministic for a seed; sorted, no repeats.
 */
export function sampleLengths(opts: { max: number; limit: number; dense: number; randomTriples: number; seed: number }): number[] {
  const out = new Set<number>();
  const add = (n: number): void => {
    if (n >= 0 && n <= opts.max) out.add(n);
  };
  for (let n = 0; n <= opts.dense; n++) add(n);
  for (let p = 128; p <= opts.max; p *= 2) for (let d = -3; d <= 3; d++) add(p + d);
  for (let d = -3; d <= 3; d++) add(opts.limit + d);
  for (let d = 0; d <= 3; d++) add(opts.max - d);
  // A small linear congruential generator: the same lengths on every run of one seed.
  let x = opts.seed >>> 0 || 1;
  const next = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
  for (let i = 0; i < opts.randomTriples; i++) {
    const n = Math.floor(next() * opts.max);
    for (let d = 0; d < 3; d++) add(n + d);
  }
  return [...out].sort((a, b) => a - b);
}
