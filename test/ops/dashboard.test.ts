/**
 * The Grafana dashboard and docs/operations.md name only series that exist, and every
 * series pobox exports is documented: a renamed metric fails here, not on a wall screen.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMetrics } from '../../src/metrics/metrics.js';

const root = join(import.meta.dirname, '..', '..');

async function exported(): Promise<Set<string>> {
  const m = createMetrics();
  return new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name));
}

function baseName(series: string): string {
  return series.replace(/_(bucket|sum|count)$/, '');
}

test('every series the dashboard queries is exported', async () => {
  const names = await exported();
  const dash = JSON.parse(readFileSync(join(root, 'docs', 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
  const used = new Set<string>();
  for (const p of dash.panels) for (const t of p.targets) for (const m of t.expr.matchAll(/\bpobox_[a-z_]+/g)) used.add(baseName(m[0]));
  assert.ok(used.size >= 15);
  for (const u of used) assert.ok(names.has(u), `dashboard uses ${u}, which pobox does not export`);
});

test('every exported pobox series is documented in docs/operations.md', async () => {
  const doc = readFileSync(join(root, 'docs', 'operations.md'), 'utf8');
  for (const name of await exported()) assert.ok(doc.includes(name), `${name} is not in docs/operations.md`);
});
