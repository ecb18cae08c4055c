/**
 * What this client has handed to the application and what it may ack. Pure bookkeeping,
 * no I/O, so the rules are easy to test on their own.
 *
 * Delivery is at-least-once across connections: the server sends again every message
 * after the device's ack cursor. Within one epoch the server sends in seq order, so one
 * high-water mark (`handed`) is enough to drop what the application has already seen.
 * When the mailbox epoch changes, old seqs mean nothing and the marks start over.
 *
 * Acks are cumulative. The tracker never acks past what the server has sent on the
 * current connection (`receivedHere`), so a resumed session never acks a seq the server
 * has not shown it in this session.
 */
export type Offer = 'new' | 'duplicate';

export class DeliveryTracker {
  /** The mailbox epoch the seqs below belong to. */
  epoch: string | undefined;
  /** Highest seq handed to the application in this epoch. */
  handed = 0;
  /** Highest seq the application is done with (handler resolved, or acked by hand). */
  confirmed = 0;
  /** Bumped whenever the epoch changes, so late handler completions of the old epoch are ignored. */
  generation = 0;
  /** Highest seq the server knows as acked on this connection (its cursor, then our acks). */
  private ackedHere = 0;
  /** Highest seq received on this connection, duplicates included. */
  private receivedHere = 0;
  /** Messages confirmed since the last ack went out, to ack early when the window fills. */
  unackedCount = 0;
  /** The highest `to` of a gap notice handed to the application in this epoch. */
  private gapTo = 0;
  /** A notice's `to` at or below the server's cursor (an admin's skip left it): only an ack of it removes the notice. */
  private gapBelow = 0;

  constructor(resume?: { epoch: string; lastSeq: number }) {
    if (resume) {
      this.epoch = resume.epoch;
      this.handed = resume.lastSeq;
      this.confirmed = resume.lastSeq;
    }
  }

  /** A new connection was welcomed. Returns true when the epoch changed and marks were reset. */
  welcome(epoch: string, epochChanged: boolean, cursor: number): boolean {
    let reset = false;
    if (epochChanged || (this.epoch !== undefined && this.epoch !== epoch)) {
      this.handed = 0;
      this.confirmed = 0;
      this.gapTo = 0;
      this.generation++;
      reset = true;
    }
    this.epoch = epoch;
    this.ackedHere = cursor;
    this.receivedHere = cursor;
    this.unackedCount = 0;
    this.gapBelow = 0;
    return reset;
  }

  /** A message frame arrived: is it new to the application? */
  offer(seq: number): Offer {
    if (seq > this.receivedHere) this.receivedHere = seq;
    if (seq <= this.handed) {
      // Already handed over: the application never sees it again, but the server needs its ack.
      if (seq <= this.confirmed) this.unackedCount++;
      return 'duplicate';
    }
    this.handed = seq;
    return 'new';
  }

  /**
   * A gap notice up to `to` arrived: the server has sent every message of this device up
   * to `to` that is still stored, so everything up to it counts as received and handed
   * over (the ack may move there). 'new' when the application has not been given a
   * notice reaching this far yet.
   */
  gap(to: number): Offer {
    if (to > this.receivedHere) this.receivedHere = to;
    if (to > this.handed) this.handed = to;
    if (to <= this.ackedHere && to > this.gapBelow) this.gapBelow = to;
    if (to <= this.gapTo) return 'duplicate';
    this.gapTo = to;
    return 'new';
  }

  /** The application is done with `seq` (auto mode: its handler resolved; manual mode: ack()). */
  confirm(seq: number, generation = this.generation): void {
    if (generation !== this.generation) return;
    const upTo = Math.min(seq, this.handed);
    if (upTo > this.confirmed) {
      this.confirmed = upTo;
      this.unackedCount++;
    }
  }

  /** The cumulative ack to send now, if any. */
  ackDue(): number | undefined {
    const upTo = Math.min(this.confirmed, this.receivedHere);
    if (upTo > this.ackedHere) return upTo;
    // The cursor is past the notice already: the ack of its `to` is what removes it.
    return this.gapBelow > 0 && upTo >= this.gapBelow ? this.gapBelow : undefined;
  }

  ackSent(upTo: number): void {
    if (upTo >= this.gapBelow) this.gapBelow = 0;
    if (upTo > this.ackedHere) this.ackedHere = upTo;
    this.unackedCount = 0;
  }
}
