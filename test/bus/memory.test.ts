/** The in-process bus: one handler or several per user, each called until it unsubscribes. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import { WakeLog } from './bus-helpers.js';

describe('memory bus', () => {
  test('every subscriber of a user gets each wake-up until it unsubscribes, in any order of leaving', async () => {
    const bus = new MemoryBus();
    const [a, b, c, other] = [new WakeLog(), new WakeLog(), new WakeLog(), new WakeLog()];
    const offA = await bus.subscribe('bob', a.handler);
    await bus.subscribe('alice', other.handler);
    assert.equal(await bus.publish({ user: 'bob', epoch: 'e', seq: 1 }), 0, 'a handler that returns nothing is not counted as taking it');
    const offB = await bus.subscribe('bob', b.handler);
    const offC = await bus.subscribe('bob', c.handler);
    await bus.publish({ user: 'bob', epoch: 'e', seq: 2 });
    await offB();
    await bus.publish({ user: 'bob', epoch: 'e', seq: 3 });
    await offA();
    await bus.publish({ user: 'bob', epoch: 'e', seq: 4 });
    await offC();
    await offC(); // twice is harmless
    await bus.publish({ user: 'bob', epoch: 'e', seq: 5 });
    assert.deepEqual([a.seqs(), b.seqs(), c.seqs(), other.seqs()], [[1, 2, 3], [2], [2, 3, 4], []]);
    const offAgain = await bus.subscribe('bob', a.handler);
    await bus.publish({ user: 'bob', epoch: 'e', seq: 6 });
    await offAgain();
    assert.deepEqual(a.seqs(), [1, 2, 3, 6]);
  });

  test('publish counts the handlers that took the wake-up', async () => {
    const bus = new MemoryBus();
    await bus.subscribe('bob', () => true);
    assert.equal(await bus.publish({ user: 'bob', epoch: 'e', seq: 1 }), 1);
    await bus.subscribe('bob', () => true);
    await bus.subscribe('bob', () => false);
    assert.equal(await bus.publish({ user: 'bob', epoch: 'e', seq: 2 }), 2);
    assert.equal(await bus.publish({ user: 'nobody', epoch: 'e', seq: 1 }), 0);
  });
});
