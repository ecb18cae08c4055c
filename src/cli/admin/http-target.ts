/**
 * The admin target for a running server: its HTTP API with an API key (admin scope for
 * everything but send, which needs the send scope). Error bodies come back as the same
 * PoboxError codes the server used.
 */
import { isErrorCode, PoboxError } from '../../core/errors.js';
import type { DeviceId, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, MailboxStats, SendResult } from '../../core/types.js';
import type { TotalsPage } from '../../metrics/totals.js';
import { splitLines, type ImportResult } from '../../postoffice/export.js';
import type { AdminTarget } from './contract.js';

const NDJSON = 'application/x-ndjson';
/** Longest export line read back from a server: more than any body limit it can have (16 MiB) in base64. */
const MAX_LINE_BYTES = 24 * 1024 * 1024;

export class HttpTarget implements AdminTarget {
  readonly where: string;
  private readonly base: URL;

  constructor(
    url: string,
    private readonly key: string,
  ) {
    this.base = new URL(url);
    this.where = this.base.origin;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), {
        method,
        headers: { authorization: `Bearer ${this.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new PoboxError('UNAVAILABLE', `cannot reach ${this.where}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.text();
    if (!res.ok) throw HttpTarget.errorOf(res, text, method, path);
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      return undefined as T;
    }
  }

  /** The PoboxError an error answer carries (its code, message and field), or one made from the status. */
  private static errorOf(res: Response, text: string, method: string, path: string): PoboxError {
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const e = (json as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
    const code = isErrorCode(e?.code) ? e.code : res.status === 404 ? 'NOT_FOUND' : 'INTERNAL';
    const message = typeof e?.message === 'string' ? e.message : `${method} ${path} answered ${res.status}`;
    return new PoboxError(code, message, typeof e?.field === 'string' ? { field: e.field } : undefined);
  }

  /** A request whose body or answer is a stream: no overall timeout (a large mailbox takes its time). */
  private async stream(method: string, path: string, body?: AsyncIterable<Uint8Array>): Promise<Response> {
    try {
      return await fetch(new URL(path, this.base), {
        method,
        headers: { authorization: `Bearer ${this.key}`, ...(body !== undefined ? { 'content-type': NDJSON } : {}) },
        ...(body !== undefined ? { body: body as unknown as BodyInit, duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      throw new PoboxError('UNAVAILABLE', `cannot reach ${this.where}: ${(err as Error).message}`, { cause: err });
    }
  }

  private static u(user: string): string {
    return `/v1/users/${encodeURIComponent(user)}`;
  }

  stats(user: UserId): Promise<MailboxStats> {
    return this.call('GET', `${HttpTarget.u(user)}/stats`);
  }

  async purge(user: UserId): Promise<{ deleted: number; deletedBytes: number }> {
    const r = await this.call<{ deleted: number; deletedBytes: number }>('DELETE', `${HttpTarget.u(user)}/messages`);
    return { deleted: r.deleted, deletedBytes: r.deletedBytes };
  }

  async skipToHead(user: UserId, device: DeviceId): Promise<{ cursor: number; deleted: number }> {
    const r = await this.call<{ cursor: number; deleted: number }>('POST', `${HttpTarget.u(user)}/devices/${encodeURIComponent(device)}/skip`, {});
    return { cursor: r.cursor, deleted: r.deleted };
  }

  async listDevices(user: UserId): Promise<DeviceCursor[]> {
    return (await this.call<{ devices: DeviceCursor[] }>('GET', `${HttpTarget.u(user)}/devices`)).devices;
  }

  async addDevice(user: UserId, device: DeviceId, start: DeviceStart): Promise<DeviceCursor & { created: boolean }> {
    const r = await this.call<DeviceCursor & { created: boolean }>('PUT', `${HttpTarget.u(user)}/devices/${encodeURIComponent(device)}`, { start });
    return { device: r.device, cursor: r.cursor, registeredAt: r.registeredAt, created: r.created };
  }

  async removeDevice(user: UserId, device: DeviceId): Promise<boolean> {
    try {
      await this.call('DELETE', `${HttpTarget.u(user)}/devices/${encodeURIComponent(device)}`);
      return true;
    } catch (err) {
      if (err instanceof PoboxError && err.code === 'NOT_FOUND') return false;
      throw err;
    }
  }

  async users(after: UserId | undefined, limit: number): Promise<UserId[]> {
    const q = new URLSearchParams({ limit: String(limit), ...(after !== undefined ? { after } : {}) });
    return (await this.call<{ users: UserId[] }>('GET', `/v1/admin/users?${q}`)).users;
  }

  totals(after: UserId | undefined, limit: number): Promise<TotalsPage> {
    const q = new URLSearchParams({ limit: String(limit), ...(after !== undefined ? { after } : {}) });
    return this.call('GET', `/v1/admin/totals?${q}`);
  }

  async send(msg: { from: UserId; to: UserId; id: string; body: string; toDevice?: DeviceId; ttlSeconds?: number }): Promise<SendResult> {
    const r = await this.call<SendResult>('POST', '/v1/messages', msg);
    return { seq: r.seq, duplicate: r.duplicate, durable: true, epoch: r.epoch };
  }

  async *exportLines(user: UserId): AsyncIterable<string> {
    const path = `${HttpTarget.u(user)}/export`;
    const res = await this.stream('GET', path);
    if (!res.ok || !res.body) throw HttpTarget.errorOf(res, await res.text(), 'GET', path);
    // Lines as the server wrote them; a cut stream simply ends without its end line.
    for await (const line of splitLines(res.body as unknown as AsyncIterable<Uint8Array>, MAX_LINE_BYTES)) yield line + '\n';
  }

  async importNdjson(user: UserId, chunks: AsyncIterable<Uint8Array>): Promise<ImportResult> {
    const path = `${HttpTarget.u(user)}/import`;
    const res = await this.stream('POST', path, chunks);
    const text = await res.text();
    if (!res.ok) throw HttpTarget.errorOf(res, text, 'POST', path);
    return JSON.parse(text) as ImportResult;
  }

  async close(): Promise<void> {
    // fetch keeps no state we own
  }
}
