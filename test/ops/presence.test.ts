/** Local presence: which devices have a live session on this node, counted per device. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LocalPresence } from '../../src/ops/presence.js';

describe('local presence', () => {
  test('a device is online while any of its connections is, users with several devices list them all', () => {
    const p = new LocalPresence();
    p.up('bob', 'phone');
    p.up('alice', 'laptop');
    assert.deepEqual([p.connectedDevices('bob'), p.onlineUsers], [['phone'], 2]);
    // A reconnect: the new connection is announced before the old one's disconnect.
    p.up('bob', 'phone');
    p.down('bob', 'phone');
    assert.deepEqual(p.connectedDevices('bob'), ['phone']);
    p.up('bob', 'tablet');
    assert.deepEqual([...p.connectedDevices('bob')].sort(), ['phone', 'tablet']);
    p.down('bob', 'phone');
    assert.deepEqual(p.connectedDevices('bob'), ['tablet']);
    p.down('bob', 'ghost'); // never connected: nothing changes
    p.down('bob', 'tablet');
    p.down('bob', 'tablet');
    assert.deepEqual([p.connectedDevices('bob'), p.onlineUsers], [[], 1]);
    assert.deepEqual([...p.entries()], [['alice', ['laptop']]]);
    p.down('alice', 'laptop');
    assert.equal(p.onlineUsers, 0);
  });
});
