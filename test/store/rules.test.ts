/** The mailbox rules every engine applies: start cursors, delete plans and gap notices. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeGap } from '../../src/core/gap.js';
import {
  ackChanges,
  deviceList,
  gapAfterAck,
  gapAfterSkip,
  gapsAfterRemoval,
  hasDevice,
  minCursor,
  planAfterAck,
  planAfterRegister,
  planAfterRemove,
  startCursor,
  type DeviceMap,
} from '../../src/store/rules.js';

const dev = (cursor: number, registeredAt = 0) => ({ cursor, registeredAt });

describe('rules: devices', () => {
  it('hasDevice looks at own keys only, never the prototype', () => {
    const devices: DeviceMap = { phone: dev(1) };
    assert.equal(hasDevice(devices, 'phone'), true);
    assert.equal(hasDevice(devices, 'laptop'), false);
    assert.equal(hasDevice(devices, 'toString'), false);
    assert.equal(hasDevice(devices, '__proto__'), false);
  });

  it('minCursor is the lowest cursor, undefined without devices', () => {
    assert.equal(minCursor({}), undefined);
    assert.equal(minCursor({ a: dev(7) }), 7);
    assert.equal(minCursor({ a: dev(7), b: dev(3), c: dev(9) }), 3);
    assert.equal(minCursor({ a: dev(0), b: dev(3) }), 0);
  });

  it('deviceList is sorted by device id and carries cursor and registration time', () => {
    assert.deepEqual(deviceList({ z: dev(1, 10), a: dev(2, 20), m: dev(3, 30) }), [
      { device: 'a', cursor: 2, registeredAt: 20 },
      { device: 'm', cursor: 3, registeredAt: 30 },
      { device: 'z', cursor: 1, registeredAt: 10 },
    ]);
    assert.deepEqual(deviceList({}), []);
  });

  it('startCursor: first device from the beginning, later ones at the head, unless asked', () => {
    assert.equal(startCursor({}, 'auto', 42), 0);
    assert.equal(startCursor({ a: dev(1) }, 'auto', 42), 42);
    assert.equal(startCursor({ a: dev(1) }, 'oldest', 42), 0);
    assert.equal(startCursor({}, 'head', 42), 42);
    assert.equal(startCursor({ a: dev(1) }, 'head', 42), 42);
  });
});

describe('rules: delete plans', () => {
  it('an ack that raises the lowest cursor deletes (oldMin, newMin] for everyone', () => {
    // devices a=2, b=5; a acks 8 -> min goes 2 -> 5
    const plan = planAfterAck(2, 5, 'a', 2, 8);
    assert.deepEqual(plan.all, { lo: 2, hi: 5 });
    assert.deepEqual(plan.targeted, { lo: 5, hi: 8, device: 'a' });
  });

  it('an ack that does not move the lowest cursor deletes only the device’s own messages', () => {
    // devices a=2, b=5; b acks 9 -> min stays 2
    const plan = planAfterAck(2, 2, 'b', 5, 9);
    assert.equal(plan.all, null);
    assert.deepEqual(plan.targeted, { lo: 5, hi: 9, device: 'b' });
  });

  it('the targeted range never overlaps the range already deleted for everyone', () => {
    for (let oldMin = 0; oldMin < 6; oldMin++)
      for (let oldCursor = oldMin; oldCursor < 8; oldCursor++)
        for (let newCursor = oldCursor + 1; newCursor < 10; newCursor++)
          for (let newMin = oldMin; newMin <= newCursor; newMin++) {
            const p = planAfterAck(oldMin, newMin, 'd', oldCursor, newCursor);
            if (p.all && p.targeted) assert.ok(p.targeted.lo >= p.all.hi, JSON.stringify(p));
            if (p.targeted) assert.ok(p.targeted.lo >= oldCursor && p.targeted.hi === newCursor);
          }
  });

  it('a single device acking deletes everything up to its cursor', () => {
    const plan = planAfterAck(3, 10, 'only', 3, 10);
    assert.deepEqual(plan.all, { lo: 3, hi: 10 });
    assert.equal(plan.targeted, null);
  });

  it('removing the device that held the minimum back frees up to the next cursor', () => {
    // devices old=1, phone=6, head 9: remove old
    const plan = planAfterRemove(1, 6, 'old', 1, 9);
    assert.deepEqual(plan.all, { lo: 1, hi: 6 });
    assert.deepEqual(plan.targeted, { lo: 6, hi: 9, device: 'old' });
  });

  it('removing the last device deletes only what was addressed to it', () => {
    const plan = planAfterRemove(4, undefined, 'phone', 4, 9);
    assert.equal(plan.all, null, 'a user without devices keeps everything');
    assert.deepEqual(plan.targeted, { lo: 4, hi: 9, device: 'phone' });
  });

  it('removing a device that is at the head deletes nothing more', () => {
    const plan = planAfterRemove(2, 2, 'tab', 9, 9);
    assert.deepEqual(plan, { all: null, targeted: null });
  });

  it('a first device at the head deletes what lies below it; other registrations delete nothing', () => {
    assert.deepEqual(planAfterRegister(undefined, 7), { all: { lo: 0, hi: 7 }, targeted: null });
    assert.deepEqual(planAfterRegister(undefined, 0), { all: null, targeted: null }, 'first device from the beginning');
    assert.deepEqual(planAfterRegister(3, 3), { all: null, targeted: null }, 'a later device at the head');
    assert.deepEqual(planAfterRegister(3, 0), { all: null, targeted: null }, "a later device at 'oldest'");
  });
});

describe('rules: gap notices', () => {
  it('a removal notes each message for every device still below it that it was for, merged with what the device had', () => {
    const devices: DeviceMap = { phone: dev(1), laptop: { ...dev(0), gap: { from: 0, to: 0, count: 1, reasons: ['purged'] } }, tablet: dev(9) };
    const gaps = gapsAfterRemoval(devices, [{ seq: 1 }, { seq: 2, toDevice: 'laptop' }, { seq: 3, toDevice: 'phone' }, { seq: 5 }], 'expired');
    assert.deepEqual(Object.fromEntries(gaps), {
      phone: { from: 3, to: 5, count: 2, reasons: ['expired'] },
      laptop: { from: 0, to: 5, count: 4, reasons: ['expired', 'purged'] },
    });
    assert.equal(gaps.has('tablet'), false, 'a device past every removed seq gets nothing');
    assert.equal(gapsAfterRemoval(devices, [], 'purged').size, 0);
  });

  it('an ack keeps a notice until it reaches its `to`', () => {
    const gap = { from: 3, to: 5, count: 2, reasons: ['expired' as const] };
    assert.equal(gapAfterAck(gap, 4), gap);
    assert.equal(gapAfterAck(gap, 5), undefined);
    assert.equal(gapAfterAck(gap, 9), undefined);
    assert.equal(gapAfterAck(undefined, 9), undefined);
  });

  it("an admin's skip adds what it passed to the notice (purged); an ack changes a device when it moves the cursor or reaches a notice the cursor is past", () => {
    const expired = { from: 2, to: 2, count: 1, reasons: ['expired' as const] };
    assert.deepEqual(gapAfterSkip(expired, [4, 6]), { from: 2, to: 6, count: 3, reasons: ['expired', 'purged'] });
    assert.equal(gapAfterSkip(expired, []), expired);
    assert.equal(gapAfterSkip(undefined, []), undefined);
    const skipped = { cursor: 9, registeredAt: 1, gap: { from: 4, to: 6, count: 2, reasons: ['purged' as const] } };
    assert.equal(ackChanges(skipped, 5), false, 'below `to`: nothing');
    assert.equal(ackChanges(skipped, 6), true, 'reaches `to`: the notice goes');
    assert.equal(ackChanges(skipped, 10), true);
    assert.equal(ackChanges(dev(9), 9), false, 'no notice, no move');
  });

  it('mergeGap: lowest from, highest to, counts added, reasons united in one order', () => {
    assert.deepEqual(mergeGap({ from: 4, to: 6, count: 2, reasons: ['purged'] }, { from: 2, to: 3, count: 1, reasons: ['expired', 'purged'] }), {
      from: 2,
      to: 6,
      count: 3,
      reasons: ['expired', 'purged'],
    });
    assert.equal(mergeGap(undefined, undefined), undefined);
  });
});
