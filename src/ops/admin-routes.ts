/**
 * Admin routes the admin CLI needs beyond the gateway's own (stats, purge, devices),
 * all behind an API key with the admin scope. docs/openapi.yaml describes them.
 *
 *   GET  /v1/admin/users?after=&limit=              -> {users, next?}
 *   GET  /v1/admin/totals?after=&limit=             -> {totals, next?}   one page of users
 *   POST /v1/users/:user/devices/:device/skip       -> {user, device, cursor, deleted}
 */
import { z } from 'zod';
import { deviceNotRegistered } from '../core/errors.js';
import { DeviceIdSchema, UserIdSchema } from '../core/ids.js';
import { intText, parseInput } from '../core/validate.js';
import type { Authenticator } from '../gateway/auth.js';
import type { HttpRouter } from '../gateway/http-router.js';
import { totalsPage } from '../metrics/totals.js';
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
    // An admin skipping a backlog is not a delivery: no receipts.
    const r = await po.ack(user, device, s.lastSeq, { skipHooks: true });
    return { json: { user, device, cursor: r.cursor, deleted: r.deleted } };
  });
}
