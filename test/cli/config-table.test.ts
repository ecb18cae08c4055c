/**
 * README's configuration table and `pobox serve --help` say the same: the same flags, each
 * with the same environment variable and default, and each row's config field is the one
 * the flag sets (src/server/config.ts). `pobox token --help` has the rows the README says
 * it takes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SERVER_OPTIONS } from '../../src/server/config.js';
import { runCli } from '../support/cli.js';

interface Row {
  flags: string[];
  envs: string[];
  field: string;
  default: string;
}

function readmeRows(): Row[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const cells = (line: string): string[] => line.split('|').slice(1, -1);
  const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  return readme
    .split('\n')
    .filter((line) => line.startsWith('| `--'))
    .map((line) => {
      const [flags, envs, field, def] = cells(line);
      return { flags: ticked(flags!), envs: ticked(envs!), field: ticked(field!)[0] ?? '', default: def!.trim().replace(/`/g, '') };
    });
}

interface HelpEntry {
  env?: string;
  default?: string;
}

/** The Options section of a --help text: each option's term, with its env and default (descriptions may wrap). */
function helpOptions(text: string): Map<string, HelpEntry> {
  const lines = text.slice(text.indexOf('Options:')).split('\n').slice(1);
  const entries: string[] = [];
  for (const line of lines) {
    if (line.trim() === '') break;
    if (/^ {2}-/.test(line)) entries.push(line.trim());
    else entries[entries.length - 1] += ' ' + line.trim();
  }
  const out = new Map<string, HelpEntry>();
  for (const entry of entries) {
    const term = entry.split(/ {2,}/)[0]!;
    const env = /[(,] ?env: ([A-Z_]+)\)/.exec(entry)?.[1];
    const def = /\(default: ("[^"]*"|[^,)]+)/.exec(entry)?.[1]?.replace(/"/g, '');
    out.set(term, { ...(env ? { env } : {}), ...(def ? { default: def } : {}) });
  }
  out.delete('-h, --help');
  return out;
}

test('README configuration table = pobox serve --help', async () => {
  const r = await runCli(['serve', '--help']);
  assert.equal(r.code, 0, r.stderr);
  const help = helpOptions(r.stdout);
  const rows = readmeRows();
  assert.ok(rows.length >= 10, `found ${rows.length} rows in README's table`);
  assert.deepEqual(rows.flatMap((row) => row.flags).sort(), [...help.keys()].sort(), 'the same flags');
  for (const row of rows) {
    const entry = help.get(row.flags[0]!)!;
    assert.equal(entry.env, row.envs[0], `${row.flags[0]}: environment variable`);
    if (entry.default !== undefined) assert.equal(row.default, entry.default, `${row.flags[0]}: default`);
    const option = SERVER_OPTIONS.find((o) => o.option.flags === row.flags[0]);
    assert.ok(option, `${row.flags[0]} is a server option`);
    assert.equal(option.field ?? '', row.field, `${row.flags[0]}: config field`);
    // A second variable (PORT) is read by a hidden option that sets the same field.
    for (const env of row.envs.slice(1)) {
      assert.ok(
        SERVER_OPTIONS.some((o) => o.option.envVar === env && o.option.hidden && o.field === row.field),
        `${env} sets ${row.field}`,
      );
    }
  }
});

test('pobox token takes the README rows from --config to --jwt-public-key', async () => {
  const r = await runCli(['token', '--help']);
  assert.equal(r.code, 0, r.stderr);
  const rows = readmeRows();
  const first = rows.findIndex((row) => row.flags[0] === '--config <file>');
  const last = rows.findIndex((row) => row.flags[0] === '--jwt-public-key <key>');
  const own = ['--user <user>', '--device <device>', '--ttl <ttl>'];
  const shared = [...helpOptions(r.stdout).keys()].filter((term) => !own.includes(term));
  assert.deepEqual(
    shared,
    rows.slice(first, last + 1).flatMap((row) => row.flags),
  );
});
