/** The README's library example is a real file; run it as a user would and check what it prints. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

const run = promisify(execFile);
const example = fileURLToPath(new URL('../examples/library.ts', import.meta.url));

describe('examples', () => {
  it('examples/library.ts sends, dedupes, reads, acks and reports stats', { timeout: 60_000 }, async () => {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', example], { timeout: 50_000 });
    assert.equal(stderr, '');
    assert.deepEqual(stdout.trim().split('\n'), [
      'sent seq 1, durable: true',
      'resent seq 1, duplicate: true',
      'bob/phone got #1 from alice: Hi Bob!',
      'acked up to 1, deleted 1',
      'pending 0, devices phone@1',
    ]);
  });
});
