/**
 * The demo page in a real browser: playwright-core drives Debian's Chromium
 * (/usr/bin/chromium, installed by .ci/run), headless, networking extras off, in a fresh
 * profile, against a started server. alice sends to bob while bob has never connected;
 * bob signs in and sees the messages in order while his pending counter falls to 0;
 * then bob goes offline and back and the new backlog drains the same way. A screenshot
 * is saved to test-artifacts/demo.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { startServer } from '../../src/server/compose.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

async function texts(page: Page, selector: string): Promise<string[]> {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent ?? ''));
}

test('demo page: alice sends to offline bob; bob comes online and sees them in order', { timeout: 120_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install it with apt-get install -y chromium (.ci/run does)`);
  const dataDir = await mkdtemp(join(tmpdir(), 'pobox-browser-'));
  const profile = await mkdtemp(join(tmpdir(), 'pobox-chromium-'));
  const server = await startServer({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', demo: true });
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1200, height: 760 } });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    await page.goto(server.url + '/');
    assert.equal(await page.title(), 'pobox demo');

    // alice signs in on the left; bob (right) has never connected.
    await page.click('#left-signin');
    await page.waitForSelector('#left-status[data-state="online"]');
    assert.equal(await page.inputValue('#left-to'), 'bob');
    for (const text of ['first', 'second', 'third']) {
      await page.fill('#left-text', text);
      await page.click('#left-send');
    }
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#left-messages li.mine .tick')).filter((t) => /^stored #/.test(t.textContent ?? '')).length === 3);
    // The right pane shows bob's backlog before he signs in.
    await page.waitForSelector('#right-pending[data-pending="3"]');

    // bob signs in: the backlog drains in order and the counter falls to 0.
    await page.click('#right-signin');
    await page.waitForFunction(() => document.querySelectorAll('#right-messages li.in').length === 3);
    assert.deepEqual(await texts(page, '#right-messages li.in .body'), ['first', 'second', 'third']);
    assert.equal((await page.$$('#right-messages li.in.backlog')).length, 3);
    await page.waitForSelector('#right-pending[data-pending="0"]');
    // alice's messages were acked by bob/web: her receipts arrive.
    await page.waitForFunction(() => document.querySelectorAll('#left-messages li.mine .tick.delivered').length === 3);

    // bob goes offline; alice sends two more; bob comes back and drains them.
    await page.click('#right-toggle');
    await page.waitForSelector('#right-status[data-state="offline"]');
    for (const text of ['fourth', 'fifth']) {
      await page.fill('#left-text', text);
      await page.click('#left-send');
    }
    await page.waitForSelector('#right-pending[data-pending="2"]');
    await page.click('#right-toggle');
    await page.waitForFunction(() => document.querySelectorAll('#right-messages li.in').length === 5);
    assert.deepEqual(await texts(page, '#right-messages li.in .body'), ['first', 'second', 'third', 'fourth', 'fifth']);
    const seqs = await page.$$eval('#right-messages li.in', (els) => els.map((e) => Number((e as HTMLElement).dataset.seq)));
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    await page.waitForSelector('#right-pending[data-pending="0"]');
    await page.waitForSelector('#right-status[data-state="online"]');
    // One more, live this time.
    await page.fill('#left-text', 'live one');
    await page.click('#left-send');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#right-messages li.in .body')).some((e) => e.textContent === 'live one'));
    assert.equal((await page.$$('#right-messages li.in:not(.backlog)')).length, 1);
    await page.waitForFunction(() => document.querySelectorAll('#left-messages li.mine .tick.delivered').length === 6);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
  } finally {
    await context.close();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(profile, { recursive: true, force: true });
  }
});
