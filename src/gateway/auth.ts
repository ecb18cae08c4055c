/**
 * Who is calling. Two kinds of credentials, both sent as `Authorization: Bearer <x>`
 * (or `?token=` on the WebSocket URL):
 *
 * - a user token: a JWT with `sub` = user, `device` = device id, and `exp`, signed
 *   HS256 with one of the configured secrets (several verify, for rotation; the first
 *   signs) or EdDSA, verified with the configured public key;
 * - a backend API key from config, with scopes `send` (send as any user, naming
 *   `from`) and/or `admin` (devices, stats, purge of any user); `senderQuotaExempt`
 *   frees its sends from the per-sender share of a mailbox (fair quotas).
 *
 * There is no anonymous mode: with nothing configured, `serve` (and `token`) create a
 * random secret in `<dataDir>/jwt-secret` (mode 0600) and use that.
 */
import { createHash, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { errors as joseErrors, importJWK, importSPKI, jwtVerify, SignJWT, type JWK, type JWTPayload } from 'jose';
import { createDurableFile, ensureDurableDir, realFs, type FileSystem } from '../core/durable-files.js';
import { PoboxError } from '../core/errors.js';
import { parseInput } from '../core/validate.js';
import { DeviceIdSchema, UserIdSchema } from '../core/ids.js';
import type { AuthConfig, ServerConfig } from './config.js';

export type Scope = 'send' | 'admin';

export type Principal = { kind: 'user'; user: string; device: string; expiresAt: number } | { kind: 'key'; name: string; scopes: ReadonlySet<Scope>; senderQuotaExempt: boolean };

export const SECRET_FILE = 'jwt-secret';

type VerifyKey = Awaited<ReturnType<typeof importSPKI>> | Uint8Array;

export interface Authenticator {
  /** Resolve a bearer credential; UNAUTHORIZED when missing, expired, forged or unknown. */
  authenticate(credential: string | undefined): Promise<Principal>;
  /** Verify a user token only (WebSocket connections are always a user's device). */
  verifyUserToken(token: string | undefined): Promise<Extract<Principal, { kind: 'user' }>>;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Read or create the data dir secret. Returns the secret and whether it was just created.
 * A created secret is on disk (file and directory entry fsync'd) before it signs anything.
 */
export function ensureSecretFile(dataDir: string, fs: FileSystem = realFs): { secret: string; path: string; created: boolean } {
  const dir = resolve(dataDir);
  const path = join(dir, SECRET_FILE);
  if (existsSync(path)) {
    const secret = readFileSync(path, 'utf8').trim();
    if (secret.length < 32) throw new PoboxError('BAD_REQUEST', `${path} holds a secret shorter than 32 characters`, { field: 'auth.secrets' });
    return { secret, path, created: false };
  }
  ensureDurableDir(dir, fs);
  const secret = randomBytes(32).toString('base64url');
  try {
    createDurableFile(path, secret + '\n', 0o600, fs);
  } catch (err) {
    // Another process created it meanwhile: read theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return ensureSecretFile(dataDir, fs);
    throw err;
  }
  return { secret, path, created: true };
}

/**
 * The secrets the server verifies with: configured ones, or else the data dir file
 * (created when missing unless an EdDSA public key is configured).
 */
export function resolveSecrets(cfg: Pick<ServerConfig, 'auth' | 'dataDir'>): { secrets: string[]; createdFile?: string; file?: string } {
  if (cfg.auth.secrets.length > 0) return { secrets: cfg.auth.secrets };
  if (cfg.auth.publicKey) return { secrets: [] };
  const f = ensureSecretFile(cfg.dataDir);
  return f.created ? { secrets: [f.secret], createdFile: f.path, file: f.path } : { secrets: [f.secret], file: f.path };
}

async function importPublicKey(text: string): Promise<VerifyKey> {
  try {
    if (text.trim().startsWith('{')) {
      const jwk = JSON.parse(text) as JWK;
      const key = await importJWK(jwk, 'EdDSA');
      if (key instanceof Uint8Array) throw new Error('a public key JWK is required, not a symmetric key');
      return key;
    }
    return await importSPKI(text, 'EdDSA');
  } catch (err) {
    throw new PoboxError('BAD_REQUEST', `invalid server config:\n  auth.publicKey: not an Ed25519 public key (JWK or PEM): ${(err as Error).message}`, {
      field: 'auth.publicKey',
      cause: err,
    });
  }
}

function unauthorized(message: string): PoboxError {
  return new PoboxError('UNAUTHORIZED', message);
}

export async function createAuthenticator(auth: AuthConfig, secrets: readonly string[]): Promise<Authenticator> {
  // Imported once: given raw bytes, jose imports a fresh WebCrypto key on every verify,
  // which cost more than the HMAC itself in a reconnect storm's profile.
  const hmacKeys = await Promise.all(secrets.map((s) => webcrypto.subtle.importKey('raw', new TextEncoder().encode(s), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])));
  const publicKey = auth.publicKey ? await importPublicKey(auth.publicKey) : undefined;
  if (hmacKeys.length === 0 && !publicKey) throw new PoboxError('BAD_REQUEST', 'invalid server config:\n  auth.secrets: no JWT secret or public key', { field: 'auth.secrets' });
  const apiKeys = auth.apiKeys.map((k) => ({ hash: sha256(k.key), name: k.name, scopes: new Set<Scope>(k.scopes), senderQuotaExempt: k.senderQuotaExempt }));
  const verifyOptions = {
    ...(auth.issuer ? { issuer: auth.issuer } : {}),
    ...(auth.audience ? { audience: auth.audience } : {}),
    clockTolerance: auth.clockToleranceSeconds,
    requiredClaims: ['exp', 'sub'],
  };

  async function verifyWith(token: string): Promise<JWTPayload> {
    let lastErr: unknown;
    for (const key of hmacKeys) {
      try {
        return (await jwtVerify(token, key, { ...verifyOptions, algorithms: ['HS256'] })).payload;
      } catch (err) {
        lastErr = err;
        // Only a signature mismatch means "try the next secret"; anything else is final.
        if (!(err instanceof joseErrors.JWSSignatureVerificationFailed) && !(err instanceof joseErrors.JOSEAlgNotAllowed)) break;
      }
    }
    if (publicKey && !(lastErr instanceof joseErrors.JWTExpired) && !(lastErr instanceof joseErrors.JWTClaimValidationFailed)) {
      try {
        return (await jwtVerify(token, publicKey, { ...verifyOptions, algorithms: ['EdDSA', 'Ed25519'] })).payload;
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  async function verifyUserToken(token: string | undefined): Promise<Extract<Principal, { kind: 'user' }>> {
    if (!token) throw unauthorized('missing token');
    let payload: JWTPayload;
    try {
      payload = await verifyWith(token);
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw unauthorized('token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw unauthorized(`token claim ${err.claim} is invalid`);
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw unauthorized('token signature is invalid');
      if (err instanceof joseErrors.JOSEAlgNotAllowed) throw unauthorized('token algorithm is not accepted');
      throw unauthorized('token is malformed');
    }
    const user = UserIdSchema.safeParse(payload.sub);
    if (!user.success) throw unauthorized('token sub is not a valid user id');
    const device = DeviceIdSchema.safeParse(payload['device']);
    if (!device.success) throw unauthorized('token device claim is missing or not a valid device id');
    return { kind: 'user', user: user.data, device: device.data, expiresAt: (payload.exp ?? 0) * 1000 };
  }

  return {
    verifyUserToken,
    async authenticate(credential) {
      if (!credential) throw unauthorized('missing Authorization: Bearer credential');
      if (apiKeys.length > 0 && credential.split('.').length !== 3) {
        const h = sha256(credential);
        for (const k of apiKeys) if (timingSafeEqual(h, k.hash)) return { kind: 'key', name: k.name, scopes: k.scopes, senderQuotaExempt: k.senderQuotaExempt };
        throw unauthorized('unknown API key');
      }
      return verifyUserToken(credential);
    },
  };
}

/** Parse a TTL like `90`, `90s`, `15m`, `1h`, `7d` into seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new PoboxError('BAD_REQUEST', `ttl "${text}" must look like 90, 90s, 15m, 1h or 7d`, { field: 'ttl' });
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(m[1]) * mult;
  if (seconds < 1 || seconds > 366 * 86400) throw new PoboxError('BAD_REQUEST', 'ttl must be between 1 second and 366 days', { field: 'ttl' });
  return seconds;
}

/** Mint an HS256 user token (what `pobox token` prints). */
export async function mintToken(opts: { secret: string; user: string; device: string; ttlSeconds?: number; issuer?: string; audience?: string; now?: number }): Promise<string> {
  const user = parseInput(UserIdSchema, opts.user, { field: 'user' });
  const device = parseInput(DeviceIdSchema, opts.device, { field: 'device' });
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  let jwt = new SignJWT({ device })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.ttlSeconds ?? 3600));
  if (opts.issuer) jwt = jwt.setIssuer(opts.issuer);
  if (opts.audience) jwt = jwt.setAudience(opts.audience);
  return jwt.sign(new TextEncoder().encode(opts.secret));
}

/** The bearer credential of a request: `Authorization: Bearer x`, else `?token=x`. */
export function bearerOf(authorization: string | undefined, url?: URL): string | undefined {
  if (authorization) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m) return m[1];
    return undefined;
  }
  return url?.searchParams.get('token') ?? undefined;
}
