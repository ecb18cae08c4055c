/**
 * The device session's state machine: its table allows exactly the moves of the delivery
 * state machine, any other move throws, and a real session announces each move it makes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextSessionState, SESSION_MOVES } from '../../src/gateway/session-state.js';
import { allowedMoves, assertRefused } from '../support/state-moves.js';
import { waitFor } from '../support/wait.js';
import { startTestServer } from './helpers.js';
import { RawClient } from '../support/raw-client.js';

describe('device session state machine', () => {
  it('allows the moves of the delivery state machine and no other', () => {
    assert.deepEqual(allowedMoves(SESSION_MOVES, nextSessionState), [
      'awaiting-hello > starting',
      'awaiting-hello > closed',
      'starting > draining',
      'starting > closed',
      'draining > live',
      'draining > closed',
      'live > closed',
    ]);
  });

  it('throws on an illegal move, naming it', () => {
    assertRefused(nextSessionState, 'live', 'starting');
    assertRefused(nextSessionState, 'closed', 'live');
  });

  it('announces every move of a real session, from its first state to closed', async () => {
    const s = await startTestServer();
    const moves: string[] = [];
    s.events.on('sessionState', (e) => {
      moves.push(`${e.device}: ${e.from ?? 'new'} > ${e.to}`);
    });
    try {
      const phone = await RawClient.connect(s.wsUrl, await s.token('alice', 'phone'));
      await phone.waitFor((f) => f.type === 'caughtUp');
      await phone.close();
      // A connection that never says hello ends from its first state.
      const silent = await RawClient.open(s.wsUrl, await s.token('alice', 'tablet'));
      await silent.close();
      await waitFor(() => moves.length === 7, 'seven moves');
      assert.deepEqual(moves, [
        'phone: new > awaiting-hello',
        'phone: awaiting-hello > starting',
        'phone: starting > draining',
        'phone: draining > live',
        'phone: live > closed',
        'tablet: new > awaiting-hello',
        'tablet: awaiting-hello > closed',
      ]);
      assert.deepEqual(s.sessions(), [], 'closed sessions are forgotten');
    } finally {
      await s.stop();
    }
  });
});
