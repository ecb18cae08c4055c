/**
 * The admin target for a running server: its HTTP API with an API key (admin scope for
 * everything but send, which needs the send scope). Error bodies come back as the same
 * PoboxError codes the server used.
 */
import { isErrorCode, PoboxError } from '../../core/errors.js';
import type { DeviceId, UserId } from '../../core/ids.js';
import type { DeviceCursor, DeviceStart, MailboxStats, SendResult } from '../../core/types.js';
import type { TotalsPage } from '../../metrics/totals.js';
import type { AdminTarget } from './contract.js';

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
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
      const code = isErrorCode(e?.code) ? e.code : res.status === 404 ? 'NOT_FOUND' : 'INTERNAL';
      const message = typeof e?.message === 'string' ? e.message : `${method} ${path} answered ${res.status}`;
      throw new PoboxError(code, message, typeof e?.field === 'string' ? { field: e.field } : undefined);
    }
    return json as T;
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

  async close(): Promise<void> {
    // fetch keeps no state we own
  }
}
