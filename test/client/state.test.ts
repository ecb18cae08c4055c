/**
 * The client's state machine: its table allows exactly the documented moves, any other
 * move throws, and every `state` event a client emits is a move of the table whose
 * `previous` is the state before it.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect } from '../../src/client/index.js';
import { CLIENT_MOVES, nextClientState } from '../../src/client/state.js';
import { allowedMoves, assertRefused } from '../support/state-moves.js';
import { record, waitFor } from './helpers.js';
import { ScriptedServer } from './scripted-server.js';

let server: ScriptedServer;
beforeEach(async () => {
  server = await ScriptedServer.start();
});
afterEach(async () => {
  await server.close();
});

describe('client state machine', () => {
  it('allows the documented moves and no other', () => {
    assert.deepEqual(allowedMoves(CLIENT_MOVES, nextClientState), [
      'connecting > connecting',
      'connecting > open',
      'connecting > reconnecting',
      'connecting > closed',
      'open > live',
      'open > reconnecting',
      'open > closed',
      'live > reconnecting',
      'live > closed',
      'reconnecting > connecting',
      'reconnecting > reconnecting',
      'reconnecting > closed',
    ]);
  });

  it('throws on an illegal move, naming it', () => {
    assertRefused(nextClientState, 'closed', 'connecting');
    assertRefused(nextClientState, 'reconnecting', 'live');
  });

  it('emits each move it makes, with the state it left', async () => {
    const c = connect(server.url, 'tok', { WebSocket, backoffBaseMs: 10, backoffMaxMs: 50 });
    const rec = record(c);
    try {
      const first = await server.connection(1);
      await first.next('hello');
      first.welcome();
      first.send({ type: 'caughtUp', seq: 0 });
      await waitFor(() => c.state === 'live', 'live');
      first.socket.close(1001, 'going away');
      const second = await server.connection(2);
      await second.next('hello');
      second.welcome();
      await waitFor(() => c.state === 'open', 'open again');
      c.close();
      assert.deepEqual(
        rec.states.map((s) => `${s.previous} > ${s.state}`),
        ['connecting > connecting', 'connecting > open', 'open > live', 'live > reconnecting', 'reconnecting > connecting', 'connecting > open', 'open > closed'],
      );
    } finally {
      c.close();
    }
  });

  it('ignores a second welcome on one connection and reports it', async () => {
    const c = connect(server.url, 'tok', { WebSocket, backoffBaseMs: 10, backoffMaxMs: 50 });
    const rec = record(c);
    try {
      const conn = await server.connection(1);
      await conn.next('hello');
      conn.welcome();
      conn.send({ type: 'caughtUp', seq: 0 });
      await waitFor(() => c.state === 'live', 'live');
      conn.welcome();
      await waitFor(() => rec.errors.length === 1, 'the error');
      assert.match(rec.errors[0]!.message, /second welcome/);
      assert.equal(c.state, 'live');
    } finally {
      c.close();
    }
  });
});
