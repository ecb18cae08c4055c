/**
 * Reach counts for ephemeral wakes on a shared bus. PUBLISH tells the publisher how many
 * nodes received a wake-up, not how many devices took it; so each receiving node answers
 * on the publisher's reply channel with the number of its devices that took it, and the
 * publisher waits for exactly as many answers as PUBLISH reported (normally a millisecond
 * or two), or `timeoutMs`, whichever comes first. A node that does not answer in time
 * makes the count a lower bound, never a wrong upper one.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';

const ReplySchema = z.object({ ref: z.string().min(1).max(64), n: z.number().int().min(0).max(1_000_000) });

interface Waiting {
  expected: number;
  answered: number;
  reached: number;
  done: (reached: number) => void;
  timer: NodeJS.Timeout;
}

export class ReachReplies {
  private readonly waiting = new Map<string, Waiting>();

  constructor(private readonly timeoutMs: number) {}

  newRef(): string {
    return randomUUID();
  }

  /**
   * Resolves with the devices reached once `expected` answers for `ref` arrived (some may
   * have come already: PUBLISH's reply and a fast node's answer race) or the timeout passed.
   */
  collect(ref: string, expected: number): Promise<number> {
    const early = this.waiting.get(ref);
    if (early) clearTimeout(early.timer);
    if (expected <= 0 || (early && early.answered >= expected)) {
      this.waiting.delete(ref);
      return Promise.resolve(early?.reached ?? 0);
    }
    return new Promise((resolve) => {
      this.waiting.set(ref, {
        expected,
        answered: early?.answered ?? 0,
        reached: early?.reached ?? 0,
        done: resolve,
        timer: setTimeout(() => this.finish(ref), this.timeoutMs),
      });
    });
  }

  /**
   * An answer arrived. Answers can arrive before `collect` is called (PUBLISH's reply and
   * a fast node's answer race), so early ones are kept briefly.
   */
  onReply(payload: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(payload);
    } catch {
      return;
    }
    const r = ReplySchema.safeParse(raw);
    if (!r.success) return;
    const w = this.waiting.get(r.data.ref) ?? this.early(r.data.ref);
    w.answered++;
    w.reached += r.data.n;
    if (w.expected > 0 && w.answered >= w.expected) this.finish(r.data.ref);
  }

  /** A placeholder for answers that beat `collect`; `collect` adopts it (or it is dropped after the timeout). */
  private early(ref: string): Waiting {
    const w: Waiting = { expected: 0, answered: 0, reached: 0, done: () => undefined, timer: setTimeout(() => this.waiting.delete(ref), this.timeoutMs) };
    this.waiting.set(ref, w);
    return w;
  }

  static encode(ref: string, n: number): string {
    return JSON.stringify({ ref, n });
  }

  private finish(ref: string): void {
    const w = this.waiting.get(ref);
    if (!w) return;
    this.waiting.delete(ref);
    clearTimeout(w.timer);
    w.done(w.reached);
  }

  close(): void {
    for (const ref of [...this.waiting.keys()]) this.finish(ref);
  }
}
