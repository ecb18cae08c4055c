/**
 * Demo mode: the page in web/ at `/`, plus two demo-only endpoints it uses:
 *
 *   POST /demo/token {user, device?}  -> {token, user, device}   a user token for anyone
 *   GET  /demo/pending/:user          -> {user, pending, pendingBytes, lastSeq}
 *
 * Anyone who can reach the server can mint tokens in demo mode, which is why it is on by
 * default only for the embedded quick start on a loopback address (see demoEnabled).
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PoboxError } from '../core/errors.js';
import { DeviceIdSchema, UserIdSchema } from '../core/ids.js';
import { parseInput } from '../core/validate.js';
import { mintToken } from '../gateway/auth.js';
import type { ServerConfig } from '../gateway/config.js';
import type { HttpRouter } from '../gateway/http-router.js';
import type { PostOffice } from '../postoffice/post-office.js';
import { RECEIPT_SENDER } from '../postoffice/receipts.js';

const TokenBodySchema = z.object({ user: UserIdSchema, device: DeviceIdSchema.default('web') }).strict();

/** Demo mode as configured, or by default on for lmdb on a loopback host only. */
export function demoEnabled(config: Pick<ServerConfig, 'demo' | 'store' | 'host'>): boolean {
  if (config.demo !== undefined) return config.demo;
  return config.store === 'lmdb' && isLoopback(config.host);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** web/ sits at the package root: two levels up from src/ops, three from dist/src/ops. */
export function webDir(): string | undefined {
  for (const rel of ['../../web/', '../../../web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/demo/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/demo/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

export function registerDemoRoutes(router: HttpRouter, deps: { postOffice: PostOffice; secret: string; config: ServerConfig; dir: string }): void {
  for (const [path, f] of Object.entries(FILES)) {
    router.route('GET', path, async () => ({
      text: await readFile(`${deps.dir}${f.file}`, 'utf8'),
      contentType: f.type,
      headers: { 'cache-control': 'no-cache' },
    }));
  }

  router.route('POST', '/demo/token', async (ctx) => {
    const body = parseInput(TokenBodySchema, await ctx.json(), 'demo token');
    ctx.tag({ user: body.user, device: body.device });
    // The receipts sender is reserved: a token for it could forge delivery receipts.
    if (body.user === RECEIPT_SENDER) throw new PoboxError('FORBIDDEN', `user ${RECEIPT_SENDER} is reserved for delivery receipts`, { field: 'user' });
    const token = await mintToken({
      secret: deps.secret,
      user: body.user,
      device: body.device,
      ttlSeconds: 3600,
      ...(deps.config.auth.issuer ? { issuer: deps.config.auth.issuer } : {}),
      ...(deps.config.auth.audience ? { audience: deps.config.auth.audience } : {}),
    });
    return { json: { token, user: body.user, device: body.device } };
  });

  router.route('GET', '/demo/pending/:user', async (ctx) => {
    const user = parseInput(UserIdSchema, ctx.params['user'], 'user');
    const s = await deps.postOffice.stats(user);
    return { json: { user, pending: s.pending, pendingBytes: s.pendingBytes, lastSeq: s.lastSeq } };
  });
}
