/**
 * Gap notices (types.ts GapNotice): how two notices merge, shared by the engines that
 * store them, the session that reports them and the SDK that surfaces them.
 */
import type { Seq } from './ids.js';
import type { GapNotice, GapReason } from './types.js';

/** Reasons in one fixed order, so equal sets compare equal. */
const REASONS: readonly GapReason[] = ['expired', 'purged'];

/** One merged notice: the lowest `from`, the highest `to`, counts added, reasons united. */
export function mergeGap(a: GapNotice | undefined, b: GapNotice | undefined): GapNotice | undefined {
  if (!a) return b;
  if (!b) return a;
  const reasons = REASONS.filter((r) => a.reasons.includes(r) || b.reasons.includes(r));
  return { from: Math.min(a.from, b.from), to: Math.max(a.to, b.to), count: a.count + b.count, reasons };
}

/** `acc` with one more message at `seq`, gone for `reason`. */
export function addToGap(acc: GapNotice | undefined, seq: Seq, reason: GapReason): GapNotice {
  return mergeGap(acc, { from: seq, to: seq, count: 1, reasons: [reason] })!;
}
