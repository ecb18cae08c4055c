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
import { createHash, createHmac, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decodeProtectedHeader, errors as joseErrors, importJWK, importSPKI, jwtVerify, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';
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

  const hmacSecrets = secrets.map((secret) => Buffer.from(secret, 'utf8'));

  /**
   * An HS256 token checked synchronously with node:crypto, or undefined to leave it to
   * jose: WebCrypto's verify (argument normalisation, a thread-pool round trip) cost more
   * than anything else a reconnect storm does per connection (bench:e2e --cpu-prof). Only
   * a success is decided here, and only for the plain case jose would accept the same way:
   * a compact token of base64url segments, protected header `alg: HS256` with no `crit`
   * or `b64`, and a signature equal (constant time) to the HMAC of one of the secrets.
   * The claims are then checked by jose itself (UnsecuredJWT.decode runs the same claim
   * validation as jwtVerify, with the same options). Anything else, including every
   * failure, goes through jwtVerify, so errors read exactly as before.
   */
  function verifyHs256(token: string): JWTPayload | undefined {
    if (hmacSecrets.length === 0 || !COMPACT_JWS.test(token)) return undefined;
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    if (!plainHs256Header(token.slice(0, dot1))) return undefined;
    const signature = Buffer.from(token.slice(dot2 + 1), 'latin1');
    const signed = token.slice(0, dot2);
    const matches = hmacSecrets.some((key) => {
      const mac = Buffer.from(createHmac('sha256', key).update(signed, 'latin1').digest('base64url'), 'latin1');
      return mac.length === signature.length && timingSafeEqual(mac, signature);
    });
    if (!matches) return undefined;
    try {
      return UnsecuredJWT.decode(`${UNSECURED_HEADER}.${token.slice(dot1 + 1, dot2)}.`, verifyOptions).payload;
    } catch {
      return undefined;
    }
  }

  /**
   * Whether a protected header (its base64url text) is plain HS256: `alg: HS256`, no
   * `crit`, no `b64`. A pure function of the text, and a server sees very few distinct
   * headers (every token of one issuer has the same), so the answer is remembered for up
   * to HEADER_DECISIONS_MAX texts: a connection's token costs no header decode.
   */
  const headerDecisions = new Map<string, boolean>();
  function plainHs256Header(text: string): boolean {
    const known = headerDecisions.get(text);
    if (known !== undefined) return known;
    let plain: boolean;
    try {
      const header = decodeProtectedHeader(`${text}..`);
      plain = header.alg === 'HS256' && !('crit' in header) && !('b64' in header);
    } catch {
      plain = false;
    }
    if (headerDecisions.size < HEADER_DECISIONS_MAX) headerDecisions.set(text, plain);
    return plain;
  }

  async function verifyWith(token: string): Promise<JWTPayload> {
    const fast = verifyHs256(token);
    if (fast) return fast;
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

  // Tokens verified lately, by their exact text (see VerifiedTokens for why that is safe).
  const verified = new VerifiedTokens(VERIFIED_TOKENS_MAX);

  async function verifyUserToken(token: string | undefined): Promise<Extract<Principal, { kind: 'user' }>> {
    if (!token) throw unauthorized('missing token');
    const known = verified.get(token, Date.now());
    if (known) return known;
    const principal = await verifyUncached(token);
    verified.add(token, principal);
    return principal;
  }

  async function verifyUncached(token: string): Promise<Extract<Principal, { kind: 'user' }>> {
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
    // Not async: a user token's promise is handed on as it is (an async function returning
    // it would cost every HTTP request extra turns of the microtask queue).
    authenticate(credential) {
      if (!credential) return Promise.reject(unauthorized('missing Authorization: Bearer credential'));
      if (apiKeys.length > 0 && credential.split('.').length !== 3) {
        const h = sha256(credential);
        for (const k of apiKeys) if (timingSafeEqual(h, k.hash)) return Promise.resolve({ kind: 'key', name: k.name, scopes: k.scopes, senderQuotaExempt: k.senderQuotaExempt });
        return Promise.reject(unauthorized('unknown API key'));
      }
      return verifyUserToken(credential);
    },
  };
}

/** A compact JWS: three base64url segments, the signature not empty. */
const COMPACT_JWS = /^[\w-]+\.[\w-]*\.[\w-]+$/;
/** `{"alg":"none"}`: the header under which jose checks the claims of a token verified here. */
const UNSECURED_HEADER = Buffer.from('{"alg":"none"}').toString('base64url');

/** How many distinct protected headers the HS256 check remembers its decision for (a bound, not an expected number). */
const HEADER_DECISIONS_MAX = 64;

/** How many verified user tokens the server remembers (about 300 bytes each). */
const VERIFIED_TOKENS_MAX = 4096;

/**
 * User tokens verified lately, by their exact text, each until its `exp`; the least
 * recently used one is forgotten first. A reconnect (or a pull) with a token seen before
 * skips the JWT parse and the HMAC or signature check: in a reconnect storm that check
 * is per connection work on the one event loop.
 *
 * Why remembering gives the same answers as verifying again: verification depends only
 * on the token's text, the secrets and public key (fixed for the life of the process:
 * changing them is a restart, which forgets everything), and the clock. The clock only
 * moves a token towards `exp`; an entry is dropped at `exp` itself, and the next use is
 * verified again (with the clock tolerance, exactly as without this cache). A token that
 * failed is never remembered. pobox has no revocation of user tokens (a token is good
 * until it expires; cut a device off by rotating the secret); if a revocation check is
 * ever added, it must run on every use, remembered or not.
 */
export class VerifiedTokens {
  private readonly entries = new Map<string, Extract<Principal, { kind: 'user' }>>();

  constructor(private readonly max: number) {}

  get(token: string, now: number): Extract<Principal, { kind: 'user' }> | undefined {
    const p = this.entries.get(token);
    if (!p) return undefined;
    this.entries.delete(token);
    if (now >= p.expiresAt) return undefined;
    this.entries.set(token, p); // now the most recently used
    return p;
  }

  add(token: string, p: Extract<Principal, { kind: 'user' }>): void {
    this.entries.delete(token);
    this.entries.set(token, p);
    if (this.entries.size <= this.max) return;
    // The oldest eighth goes at once. Forgetting one entry per add made each add skip every
    // entry deleted before it (a Map keeps deleted slots until it is rebuilt): in a storm
    // of new tokens that scan was 0.6% of the server's time.
    let drop = this.entries.size - this.max + (this.max >> 3);
    for (const key of this.entries.keys()) {
      if (drop-- <= 0) break;
      this.entries.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }
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
