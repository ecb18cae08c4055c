/**
 * tools/process-group.ts: a guarded child's whole process group goes when the guard
 * signals it, when the parent exits without stopping it (its 'exit' handler, with the
 * watchdog behind it), and when the parent is SIGKILLed and runs no handler at all (the
 * watchdog alone); the watchdog itself goes once the child has exited. A guard whose
 * watchdog does not kill fails the SIGKILL case.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { guardProcessGroup } from '../../tools/process-group.js';
import { waitFor } from '../support/wait.js';

const PARENT = fileURLToPath(new URL('./process-group-child.ts', import.meta.url));
const LINUX_ONLY = process.platform !== 'linux' && 'reads process groups from /proc';

/** The processes of /proc matching `keep` (given their stat fields after the name, and their argv), zombies left out. */
function processes(keep: (stat: string[], argv: string[]) => boolean): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const raw = readFileSync(`/proc/${name}/stat`, 'utf8');
      const stat = raw.slice(raw.lastIndexOf(')') + 2).split(' '); // [state, ppid, pgrp, ...]
      if (stat[0] === 'Z') continue;
      if (keep(stat, readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0'))) out.push(Number(name));
    } catch {
      // gone while we looked
    }
  }
  return out;
}
/** After each test: what a failing one left behind goes too. */
function reap(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone, as it should be
  }
}
const members = (pgid: number): number[] => processes((stat) => Number(stat[2]) === pgid);
const watchdogs = (pgid: number): number[] => processes((_, argv) => argv.includes('pobox-group-watchdog') && argv.includes(String(pgid)));

/** Start the parent in `mode`; its group id once the group has both its processes and a watchdog. */
async function startParent(mode: 'hold' | 'exit'): Promise<{ parent: ReturnType<typeof spawn>; pgid: number }> {
  const parent = spawn(process.execPath, ['--import', 'tsx', PARENT, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const pgid = await waitFor(() => /^\d+\n/.test(out) && Number(out.trim()), 'the parent to print the group id', 30_000);
  return { parent, pgid };
}

describe('process groups that must not outlive their parent', { skip: LINUX_ONLY }, () => {
  it('a SIGKILLed parent runs no handler: the watchdog kills the group', async (t) => {
    const { parent, pgid } = await startParent('hold');
    t.after(() => reap(pgid));
    await waitFor(() => members(pgid).length === 2 && watchdogs(pgid).length === 1, 'the shell, its sleep and the watchdog');
    parent.kill('SIGKILL');
    await once(parent, 'exit');
    await waitFor(() => members(pgid).length === 0, `group ${pgid} to be gone`);
    await waitFor(() => watchdogs(pgid).length === 0, 'the watchdog to end');
  });

  it('a parent that exits without stopping the child: the group goes with it', async (t) => {
    const { parent, pgid } = await startParent('exit');
    t.after(() => reap(pgid));
    const [code] = (await once(parent, 'exit')) as [number | null];
    assert.equal(code, 0);
    await waitFor(() => members(pgid).length === 0, `group ${pgid} to be gone`);
    await waitFor(() => watchdogs(pgid).length === 0, 'the watchdog to end');
  });

  it('signal() reaches the whole group, and the watchdog ends with the child', async (t) => {
    const child = spawn('sh', ['-c', 'sleep 300 & wait'], { detached: true, stdio: 'ignore' });
    const group = guardProcessGroup(child);
    const pgid = child.pid!;
    t.after(() => reap(pgid));
    await waitFor(() => members(pgid).length === 2 && watchdogs(pgid).length === 1, 'the shell, its sleep and the watchdog');
    const exited = once(child, 'exit');
    group.signal('SIGTERM');
    await exited;
    await waitFor(() => members(pgid).length === 0, `group ${pgid} to be gone`);
    await waitFor(() => watchdogs(pgid).length === 0, 'the watchdog to end');
  });
});
