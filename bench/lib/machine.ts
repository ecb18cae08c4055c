/**
 * What machine a benchmark ran on, so committed results can be read in context.
 * Shared by every benchmark in bench/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  release: string;
  arch: string;
  node: string;
  /** Versions of the packages the benchmark depends on, e.g. { lmdb: '3.5.6' }. */
  packages: Record<string, string>;
  /** 1, 5 and 15 minute load averages when the info was taken: a busy machine shows here. */
  loadavg: number[];
}

const require = createRequire(import.meta.url);

/** The installed version of a package, found by walking up from its entry point. */
export function packageVersion(name: string): string {
  try {
    let dir = dirname(require.resolve(name));
    for (let i = 0; i < 6; i++) {
      const file = join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name && pkg.version) return pkg.version;
      }
      dir = dirname(dir);
    }
  } catch {
    // not installed: reported as unknown below
  }
  return 'unknown';
}

export function machineInfo(packages: readonly string[] = []): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
    node: process.version,
    packages: Object.fromEntries(packages.map((p) => [p, packageVersion(p)])),
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** A short markdown list for a results file. */
export function machineMarkdown(m: MachineInfo): string {
  const pkgs = Object.entries(m.packages)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `- CPU: ${m.cpuModel}, ${m.cores} cores`,
    `- memory: ${m.memoryGiB} GiB`,
    `- OS: ${m.platform} ${m.release} (${m.arch})`,
    `- Node ${m.node}${pkgs ? `, ${pkgs}` : ''}`,
    `- load average at start (1/5/15 min): ${m.loadavg.join(' / ')}`,
  ].join('\n');
}
