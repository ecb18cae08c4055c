/**
 * Admin routes the admin CLI needs beyond the gateway's own (stats, purge, devices),
 * all behind an API key with the admin scope. docs/openapi.yaml describes them.
 *
 *   GET  /v1/admin/users?after=&limit=              -> {users, next?}
 *   GET  /v1/admin/totals?after=&limit=             -> {totals, next?}   one page of users
 *   POST /v1/users/:user/devices/:device/skip       -> {user, device, cursor, deleted}
 *   GET  /v1/users/:user/export                     -> NDJSON stream (src/postoffice/export.ts)
 *   POST /v1/users/:user/import    (NDJSON body)    -> {user, from, epoch, lastSeq, devices, messages, bytes}
 */
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { deviceNotRegistered } from '../core/errors.js';
import { DeviceIdSchema, UserIdSchema } from '../core/ids.js';
import { intText, parseInput } from '../core/validate.js';
import type { Authenticator } from '../gateway/auth.js';
import type { HttpRouter } from '../gateway/http-router.js';
import { totalsPage } from '../metrics/totals.js';
import { exportLines, importLines, maxLineBytes, NDJSON_CONTENT_TYPE, splitLines } from '../postoffice/export.js';
import type { PostOffice } from '../postoffice/post-office.js';
import { requireAdmin } from './metrics-route.js';

const PageQuerySchema = z.object({
  after: UserIdSchema.optional(),
  limit: intText(z.number().int().min(1, 'limit must be at least 1').max(10_000, 'limit must be at most 10000'), 'limit must be a positive integer').default(1000),
});

export function registerAdminRoutes(router: HttpRouter, auth: Authenticator, po: PostOffice): void {
  router.route('GET', '/v1/admin/users', async (ctx) => {
    await requireAdmin(auth, ctx.req.headers.authorization);
    const q = parseInput(PageQuerySchema, Object.fromEntries(ctx.url.searchParams), 'users');
    const users = await po.store.users(q.after === undefined ? { limit: q.limit } : { after: q.after, limit: q.limit });
    return { json: users.length < q.limit ? { users } : { users, next: users[users.length - 1] } };
  });

  router.route('GET', '/v1/admin/totals', async (ctx) => {
    await requireAdmin(auth, ctx.req.headers.authorization);
    const q = parseInput(PageQuerySchema, Object.fromEntries(ctx.url.searchParams), 'totals');
    return { json: await totalsPage({ users: (o) => po.store.users(o), stats: (u) => po.stats(u) }, q.after, q.limit) };
  });

  router.route('POST', '/v1/users/:user/devices/:device/skip', async (ctx) => {
    await requireAdmin(auth, ctx.req.headers.authorization);
    const user = parseInput(UserIdSchema, ctx.params['user'], 'user');
    const device = parseInput(DeviceIdSchema, ctx.params['device'], 'device');
    ctx.tag({ user, device });
    const s = await po.stats(user);
    if (!s.devices.some((d) => d.device === device)) throw deviceNotRegistered(user, device);
    // An admin skipping a backlog is not a delivery: no receipts; the device gets a gap notice for it.
    const r = await po.ack(user, device, s.lastSeq, { adminSkip: true });
    return { json: { user, device, cursor: r.cursor, deleted: r.deleted } };
  });
}

/** The export and import routes (admin key): a mailbox as NDJSON, out and in. */
export function registerExportRoutes(router: HttpRouter, auth: Authenticator, po: PostOffice): void {
  router.route('GET', '/v1/users/:user/export', async (ctx) => {
    await requireAdmin(auth, ctx.req.headers.authorization);
    const user = parseInput(UserIdSchema, ctx.params['user'], 'user');
    ctx.tag({ user });
    const lines = exportLines(po, user);
    // The first line before the headers: an unknown user or a store failure is still a plain error answer.
    const first = await lines.next();
    ctx.res.writeHead(200, { 'content-type': `${NDJSON_CONTENT_TYPE}; charset=utf-8`, 'cache-control': 'no-store' });
    if (!first.done) await write(ctx.res, first.value);
    // A failure from here on ends the response without the end line (the router destroys
    // the socket), which an import refuses as truncated.
    for await (const line of lines) await write(ctx.res, line);
    ctx.res.end();
  });

  router.route('POST', '/v1/users/:user/import', async (ctx) => {
    await requireAdmin(auth, ctx.req.headers.authorization);
    const user = parseInput(UserIdSchema, ctx.params['user'], 'user');
    ctx.tag({ user });
    // Not destroyed when the reader stops early on bad input: the error is still answered.
    const chunks = ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
    const r = await importLines(po, splitLines(chunks, maxLineBytes(po.importLimits())), { user });
    return { status: 201, json: r };
  });
}

/** Write and wait for the socket to take it (backpressure), or fail when the client went away. */
async function write(res: ServerResponse, text: string): Promise<void> {
  if (res.destroyed) throw new Error('the client closed the connection');
  if (res.write(text)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('the client closed the connection'));
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
