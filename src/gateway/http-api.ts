/**
 * The HTTP API (docs/openapi.yaml is its description). Every body and query is parsed
 * by a zod schema; identity comes from the bearer credential only:
 *
 * - a user token acts as its user and device (send as itself, pull/ack its device,
 *   manage its own user's devices);
 * - an API key with `send` sends as any user it names in `from`;
 * - an API key with `admin` manages devices, stats and purge of any user.
 */
import { z } from 'zod';
import type { Bus } from '../bus/contract.js';
import { PoboxError, deviceNotRegistered } from '../core/errors.js';
import { DeviceIdSchema, SeqSchema, UserIdSchema } from '../core/ids.js';
import { intText, parseInput } from '../core/validate.js';
import type { TypedEmitter } from '../core/emitter.js';
import type { PostOffice } from '../postoffice/post-office.js';
import { bearerOf, type Authenticator, type Principal, type Scope } from './auth.js';
import type { GatewayEvents } from './events.js';
import type { Readiness } from './readiness.js';
import type { HttpContext, HttpRouter } from './http-router.js';
import type { Body } from '../core/bytes.js';
import { checkedSend, checkGroupSend, frameBody, jsonBody, recipientResults, SendFrameSchema } from './frames.js';
import type { ParsedSendInput } from '../postoffice/schemas.js';

/** The WebSocket send frame's fields, plus `from`. */
const SendBodySchema = SendFrameSchema.omit({ type: true }).extend({
  /** Only read for API keys with the `send` scope; a user token's `from` is its user. */
  from: z.unknown().optional(),
});

const PullQuerySchema = z.object({
  after: intText(SeqSchema, 'after must be a non-negative integer').default(0),
  limit: intText(z.number().int().min(1, 'limit must be at least 1'), 'limit must be a positive integer').default(100),
});

const AckBodySchema = z.object({ upTo: SeqSchema });
const RegisterBodySchema = z.object({ start: z.enum(['auto', 'oldest', 'head']).default('auto') });

export interface HttpApiDeps {
  postOffice: PostOffice;
  bus: Bus;
  auth: Authenticator;
  events: TypedEmitter<GatewayEvents>;
  trackSend: (p: Promise<unknown>) => void;
  /** What /readyz checks (readiness.ts). */
  readiness: Readiness;
}

async function principalOf(ctx: HttpContext, auth: Authenticator): Promise<Principal> {
  const p = await auth.authenticate(bearerOf(ctx.req.headers.authorization, undefined));
  if (p.kind === 'user') ctx.tag({ user: p.user, device: p.device });
  else ctx.tag({ key: p.name });
  return p;
}

function requireUserToken(p: Principal): Extract<Principal, { kind: 'user' }> {
  if (p.kind !== 'user') throw new PoboxError('FORBIDDEN', "this endpoint needs a user token (it acts on the token's device)");
  return p;
}

function requireScope(p: Principal, scope: Scope): void {
  if (p.kind !== 'key' || !p.scopes.has(scope)) throw new PoboxError('FORBIDDEN', `this endpoint needs an API key with the ${scope} scope`);
}

/** A user token may act on its own user; an admin key on anyone. */
function requireSelfOrAdmin(p: Principal, user: string): void {
  if (p.kind === 'user' && p.user === user) return;
  if (p.kind === 'key' && p.scopes.has('admin')) return;
  throw new PoboxError('FORBIDDEN', p.kind === 'user' ? 'a user token can only manage its own user' : 'this endpoint needs an API key with the admin scope');
}

function userParam(ctx: HttpContext): string {
  return parseInput(UserIdSchema, ctx.params['user'], 'user');
}

function deviceParam(ctx: HttpContext): string {
  return parseInput(DeviceIdSchema, ctx.params['device'], 'device');
}

function field<T>(schema: z.ZodType<T>, value: unknown, what: string, name: string): T {
  return parseInput(schema, value, { what, field: name });
}

export function registerHttpApi(router: HttpRouter, deps: HttpApiDeps): void {
  const { postOffice: po, auth, events } = deps;

  router.route('GET', '/healthz', () => ({ json: { ok: true } }));

  router.route('GET', '/readyz', async () => ({ json: await deps.readiness.check() }));

  router.route('POST', '/v1/messages', async (ctx) => {
    let from: string;
    let exempt = false;
    let input: z.output<typeof SendBodySchema>;
    let body: Body;
    try {
      const p = await principalOf(ctx, auth);
      input = parseInput(SendBodySchema, await ctx.json(), 'send');
      body = frameBody(input);
      if (p.kind === 'user') {
        from = p.user; // a `from` in the body is ignored: identity comes from the token
      } else {
        requireScope(p, 'send');
        if (input.from === undefined) throw new PoboxError('BAD_REQUEST', 'send: from: required when sending with an API key', { field: 'from' });
        from = field(UserIdSchema, input.from, 'send', 'from');
        exempt = p.senderQuotaExempt;
      }
    } catch (err) {
      // Refused before reaching the post office (auth, size, bad input): count it for metrics.
      events.emit('sendRefused', { code: err instanceof PoboxError ? err.code : 'BAD_REQUEST', via: 'http' });
      throw err;
    }
    if (Array.isArray(input.to)) {
      checkGroupSend(input);
      const group = po.sendGroup({
        from,
        to: input.to,
        id: input.id,
        body,
        ...(input.ttlSeconds !== undefined ? { ttlSeconds: input.ttlSeconds } : {}),
        ...(input.receipt ? { receipt: true } : {}),
      });
      deps.trackSend(group);
      const r = await group;
      let stored = false;
      for (const o of r.results) {
        if (!o.ok) continue;
        stored ||= !o.duplicate;
        events.emit('accepted', { from, to: o.to, seq: o.seq, duplicate: o.duplicate, via: 'http' });
      }
      // 201 when something new was stored; per-recipient refusals are in the results.
      return { status: stored ? 201 : 200, json: { id: input.id, durable: true, results: recipientResults(r.results) } };
    }
    const to = input.to;
    if (input.ephemeral) {
      const r = await po.sendEphemeral({
        from,
        to,
        id: input.id,
        body,
        ...(input.toDevice !== undefined ? { toDevice: input.toDevice } : {}),
        ...(input.ttlSeconds !== undefined ? { ttlSeconds: input.ttlSeconds } : {}),
        ...(input.receipt !== undefined ? { receipt: input.receipt } : {}),
      });
      return { status: 200, json: { id: input.id, seq: 0, duplicate: false, durable: false, ephemeral: true, reached: r.reached } };
    }
    const send: ParsedSendInput = {
      from,
      to,
      id: input.id,
      body,
      ...(input.toDevice !== undefined ? { toDevice: input.toDevice } : {}),
      ...(input.ttlSeconds !== undefined ? { ttlSeconds: input.ttlSeconds } : {}),
      ...(input.receipt ? { receipt: true } : {}),
      ...(exempt ? { senderQuotaExempt: true } : {}),
    };
    // SendBodySchema is the frame schema, and `from` was checked above: not parsed twice (checkedSend).
    const checked = checkedSend(send);
    const sending = checked ? po.sendChecked(checked) : po.send(send);
    deps.trackSend(sending);
    const r = await sending;
    events.emit('accepted', { from, to, seq: r.seq, duplicate: r.duplicate, via: 'http' });
    return { status: r.duplicate ? 200 : 201, json: { id: input.id, seq: r.seq, duplicate: r.duplicate, durable: true, epoch: r.epoch } };
  });

  router.route('GET', '/v1/messages', async (ctx) => {
    const p = requireUserToken(await principalOf(ctx, auth));
    const q = parseInput(PullQuerySchema, Object.fromEntries(ctx.url.searchParams), 'pull');
    // First contact of this device registers it, as a WebSocket connection would.
    const page = await po.readOrRegister(p.user, p.device, q.after, q.limit);
    // Bodies of bytes as base64 with `binary: true`, as in JSON frames; a page of text goes out as read (no copy).
    if (page.messages.every((m) => typeof m.body === 'string')) return { json: page };
    return { json: { ...page, messages: page.messages.map((m) => (typeof m.body === 'string' ? m : { ...m, ...jsonBody(m.body) })) } };
  });

  router.route('POST', '/v1/ack', async (ctx) => {
    const p = requireUserToken(await principalOf(ctx, auth));
    const body = parseInput(AckBodySchema, await ctx.json(), 'ack');
    const r = await po.ack(p.user, p.device, body.upTo);
    return { json: r };
  });

  router.route('GET', '/v1/users/:user/devices', async (ctx) => {
    const p = await principalOf(ctx, auth);
    const user = userParam(ctx);
    requireSelfOrAdmin(p, user);
    return { json: { user, devices: await po.listDevices(user) } };
  });

  router.route('PUT', '/v1/users/:user/devices/:device', async (ctx) => {
    const p = await principalOf(ctx, auth);
    const user = userParam(ctx);
    const device = deviceParam(ctx);
    requireSelfOrAdmin(p, user);
    const hasBody = Number(ctx.req.headers['content-length'] ?? 0) > 0 || ctx.req.headers['transfer-encoding'] !== undefined;
    const body = parseInput(RegisterBodySchema, hasBody ? await ctx.json() : {}, 'register');
    const r = await po.registerDevice(user, device, body.start);
    return { status: r.created ? 201 : 200, json: { user, device: r.device, cursor: r.cursor, registeredAt: r.registeredAt, created: r.created } };
  });

  router.route('DELETE', '/v1/users/:user/devices/:device', async (ctx) => {
    const p = await principalOf(ctx, auth);
    const user = userParam(ctx);
    const device = deviceParam(ctx);
    requireSelfOrAdmin(p, user);
    const removed = await po.removeDevice(user, device);
    if (!removed) throw deviceNotRegistered(user, device);
    return { json: { user, device, removed: true } };
  });

  router.route('GET', '/v1/users/:user/stats', async (ctx) => {
    const p = await principalOf(ctx, auth);
    requireScope(p, 'admin');
    return { json: await po.stats(userParam(ctx)) };
  });

  router.route('DELETE', '/v1/users/:user/messages', async (ctx) => {
    const p = await principalOf(ctx, auth);
    requireScope(p, 'admin');
    const user = userParam(ctx);
    return { json: { user, ...(await po.purge(user)) } };
  });
}
