/**
 * The parent process of test/tools/process-group.test.ts: starts a two-process group
 * (a shell leading it and a sleep it started) under guardProcessGroup, prints the group
 * id, then either holds until it is killed (`hold`) or exits at once without stopping
 * anything (`exit`).
 */
import { spawn } from 'node:child_process';
import { guardProcessGroup } from '../../tools/process-group.js';

const mode = process.argv[2];
const child = spawn('sh', ['-c', 'sleep 300 & wait'], { detached: true, stdio: 'ignore' });
guardProcessGroup(child);
process.stdout.write(`${child.pid}\n`);
if (mode === 'exit') process.exit(0);
setInterval(() => undefined, 60_000);
