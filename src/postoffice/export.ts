/**
 * Export and import of one mailbox as NDJSON (docs/protocol.md, "Export and import"): a
 * versioned header line, one line per device (with its cursor), one per pending message
 * in seq order (bytes bodies as base64 with `binary: true`, as everywhere in JSON), and an
 * end line with the counts, so a truncated file is told from a complete one.
 *
 *   {"type":"pobox-export","version":1,"user":"bob","exportedAt":"...","epoch":"...","lastSeq":12}
 *   {"type":"device","device":"phone","cursor":3,"registeredAt":1700000000000,"gap"?:{"from","to","count","reasons"}}
 *   {"type":"message","seq":4,"id":"m4","from":"alice","sentAt":...,"expiresAt":...,"body":"hi"}
 *   {"type":"end","devices":1,"messages":1,"bytes":2}
 *
 * Export streams: the head and devices first (one stats call), then the messages page by
 * page up to the last seq the head had, so memory stays one page. Import reads every line
 * through a schema (a typed error naming the line), checks the whole file (order, ids,
 * cursors, limits, the end line's counts) before anything is written, and then restores
 * it in one store call: a bad or truncated file writes nothing. What an import holds is
 * bounded by the mailbox quotas, so it is held in memory until that call.
 */
import { z } from 'zod';
import { base64ToBytes, BASE64, bytesToBase64, type Body } from '../core/bytes.js';
import { PoboxError, mailboxNotEmpty } from '../core/errors.js';
import { DeviceIdSchema, MessageIdSchema, SeqSchema, UserIdSchema, type UserId } from '../core/ids.js';
import type { GapNotice, StoredMessage } from '../core/types.js';
import { parseInput } from '../core/validate.js';
import type { MailboxSnapshot, RestoreOutcome } from '../store/contract.js';
import type { PostOffice } from './post-office.js';
import { EpochSchema, GapNoticeSchema, SnapshotBuilder, TimeSchema, type ImportLimits } from './snapshot.js';

export const EXPORT_TYPE = 'pobox-export';
export const EXPORT_VERSION = 1;
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

export const ExportHeaderSchema = z
  .object({
    type: z.literal(EXPORT_TYPE, `the first line must be the ${EXPORT_TYPE} header`),
    version: z.literal(EXPORT_VERSION, `version must be ${EXPORT_VERSION} (the only export version this pobox reads)`),
    user: UserIdSchema,
    exportedAt: z.iso.datetime('exportedAt must be an ISO 8601 time'),
    epoch: EpochSchema,
    lastSeq: SeqSchema,
  })
  .strict();
export type ExportHeader = z.output<typeof ExportHeaderSchema>;

const DeviceLineSchema = z.object({ type: z.literal('device'), device: DeviceIdSchema, cursor: SeqSchema, registeredAt: TimeSchema, gap: GapNoticeSchema.optional() }).strict();

const MessageLineSchema = z
  .object({
    type: z.literal('message'),
    seq: SeqSchema.min(1),
    id: MessageIdSchema,
    from: UserIdSchema,
    sentAt: TimeSchema,
    expiresAt: TimeSchema,
    body: z.string(),
    binary: z.boolean().optional(),
    toDevice: DeviceIdSchema.optional(),
    receipt: z.boolean().optional(),
  })
  .strict();

const EndLineSchema = z.object({ type: z.literal('end'), devices: z.number().int().min(0), messages: z.number().int().min(0), bytes: z.number().int().min(0) }).strict();

const LineSchema = z.discriminatedUnion('type', [DeviceLineSchema, MessageLineSchema, EndLineSchema], {
  error: 'type must be device, message or end (the header comes only first)',
});

/** The longest line an import accepts: a message with the largest body, base64, and its fields. */
export function maxLineBytes(limits: Pick<ImportLimits, 'maxBodyBytes'>): number {
  return Math.ceil(limits.maxBodyBytes / 3) * 4 + 2048;
}

// ---- export ------------------------------------------------------------------------------------

export interface ExportOptions {
  /** Messages read per store call (at most the post office's maxPageSize). */
  pageSize?: number;
}

/**
 * The NDJSON lines (each ending in a newline) of one user's mailbox. NOT_FOUND when the user
 * has no mailbox. A failure part way through ends the stream without an end line, which an
 * import refuses.
 */
export async function* exportLines(po: PostOffice, user: UserId, opts: ExportOptions = {}): AsyncGenerator<string> {
  const stats = await po.stats(user);
  if (stats.epoch === '') throw new PoboxError('NOT_FOUND', `${user} has no mailbox to export`, { field: 'user' });
  const header: ExportHeader = { type: EXPORT_TYPE, version: EXPORT_VERSION, user, exportedAt: new Date(po.now()).toISOString(), epoch: stats.epoch, lastSeq: stats.lastSeq };
  yield JSON.stringify(header) + '\n';
  for (const d of stats.devices) {
    const gap = await gapOf(po, user, d.device, stats.lastSeq);
    yield JSON.stringify({ type: 'device', device: d.device, cursor: d.cursor, registeredAt: d.registeredAt, ...(gap ? { gap } : {}) }) + '\n';
  }
  const pageSize = Math.min(opts.pageSize ?? 500, po.config.limits.maxPageSize);
  const devices = new Set(stats.devices.map((d) => d.device));
  let after = 0;
  let messages = 0;
  let bytes = 0;
  for (;;) {
    const page = await po.exportPage(user, after, stats.lastSeq, pageSize);
    for (const m of page.messages) {
      // For a device registered or removed since the devices were read: nobody in this export could read it.
      if (m.toDevice !== undefined && !devices.has(m.toDevice)) continue;
      messages++;
      bytes += m.bytes;
      yield messageLine(m) + '\n';
    }
    if (!page.more) break;
    // Never an end line after a read that made no progress: the file would look whole.
    if (page.nextAfter <= after) throw new PoboxError('INTERNAL', `export of ${user} made no progress after seq ${after}`);
    after = page.nextAfter;
  }
  yield JSON.stringify({ type: 'end', devices: stats.devices.length, messages, bytes }) + '\n';
}

/** A device's gap notice, as its reads report it (a read past the head: no messages, one request). */
async function gapOf(po: PostOffice, user: UserId, device: string, lastSeq: number): Promise<GapNotice | undefined> {
  try {
    return (await po.read(user, device, lastSeq, 1)).gap;
  } catch (err) {
    if (err instanceof PoboxError && err.code === 'NOT_FOUND') return undefined; // removed meanwhile
    throw err;
  }
}

function messageLine(m: StoredMessage): string {
  const line: Record<string, unknown> = { type: 'message', seq: m.seq, id: m.id, from: m.from, sentAt: m.sentAt, expiresAt: m.expiresAt };
  if (typeof m.body === 'string') line.body = m.body;
  else {
    line.body = bytesToBase64(m.body);
    line.binary = true;
  }
  if (m.toDevice !== undefined) line.toDevice = m.toDevice;
  if (m.receipt) line.receipt = true;
  return JSON.stringify(line);
}

// ---- import ------------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The lines of a byte stream (LF or CRLF; the last line may lack its newline), decoded as
 * UTF-8. A line longer than `maxBytes` is PAYLOAD_TOO_LARGE before it is all read.
 */
export async function* splitLines(chunks: AsyncIterable<Uint8Array | string>, maxBytes: number): AsyncGenerator<string> {
  let pending: Buffer[] = [];
  let size = 0;
  let line = 1;
  const take = (piece: Buffer): string => {
    pending.push(piece);
    const all = Buffer.concat(pending);
    pending = [];
    size = 0;
    let text: string;
    try {
      text = utf8.decode(all);
    } catch {
      throw new PoboxError('BAD_REQUEST', `import: line ${line}: not valid UTF-8`, { field: `line ${line}` });
    }
    line++;
    return text.endsWith('\r') ? text.slice(0, -1) : text;
  };
  const tooLong = (): PoboxError => new PoboxError('PAYLOAD_TOO_LARGE', `import: line ${line} is longer than ${maxBytes} bytes`, { field: `line ${line}` });
  for await (const chunk of chunks) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      if (size + nl - start > maxBytes) throw tooLong();
      yield take(buf.subarray(start, nl));
      start = nl + 1;
    }
    if (start < buf.length) {
      size += buf.length - start;
      if (size > maxBytes) throw tooLong();
      // Copied: a stream may reuse the chunk's memory once we return.
      pending.push(Buffer.from(buf.subarray(start)));
    }
  }
  if (size > 0) yield take(Buffer.alloc(0));
}

export interface ImportOptions {
  /** Import into this user instead of the one the header names. */
  user?: UserId;
  /** Told after each line (for a progress display). */
  onLine?: (line: number) => void;
}

export interface ImportResult extends RestoreOutcome {
  user: UserId;
  /** The user the export was taken of. */
  from: UserId;
  epoch: string;
  lastSeq: number;
}

/** The first line of an export, parsed (the CLI reads it to learn the user before sending a file). */
export function parseHeader(text: string, lineNo = 1): ExportHeader {
  return parseInput(ExportHeaderSchema, parseJson(text, lineNo), { what: `import: line ${lineNo}` });
}

function parseJson(text: string, lineNo: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new PoboxError('BAD_REQUEST', `import: line ${lineNo}: not valid JSON`, { field: `line ${lineNo}` });
  }
}

/** Errors of the snapshot checks, named by the line that caused them. */
function atLine<T>(lineNo: number, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof PoboxError)) throw err;
    throw new PoboxError(err.code, `import: line ${lineNo}: ${err.message}`, { field: err.field ?? `line ${lineNo}` });
  }
}

/** Read and check a whole export; nothing is written. */
export async function readImport(lines: AsyncIterable<string>, limits: ImportLimits, opts: ImportOptions = {}): Promise<{ header: ExportHeader; snapshot: MailboxSnapshot }> {
  let header: ExportHeader | undefined;
  let builder: SnapshotBuilder | undefined;
  let ended = false;
  let lineNo = 0;
  for await (const text of lines) {
    lineNo++;
    opts.onLine?.(lineNo);
    if (text.trim() === '') continue;
    if (ended) throw new PoboxError('BAD_REQUEST', `import: line ${lineNo}: nothing may follow the end line`, { field: `line ${lineNo}` });
    if (!header || !builder) {
      header = parseHeader(text, lineNo);
      builder = new SnapshotBuilder(opts.user ?? header.user, header.epoch, header.lastSeq, limits);
      continue;
    }
    const line = parseInput(LineSchema, parseJson(text, lineNo), { what: `import: line ${lineNo}` });
    const b = builder;
    switch (line.type) {
      case 'device':
        atLine(lineNo, () => b.device({ device: line.device, cursor: line.cursor, registeredAt: line.registeredAt, ...(line.gap ? { gap: line.gap } : {}) }));
        break;
      case 'message': {
        if (line.binary && !BASE64.test(line.body)) {
          throw new PoboxError('BAD_REQUEST', `import: line ${lineNo}: body: with binary: true the body must be standard base64 (with padding)`, { field: 'body' });
        }
        const body: Body = line.binary ? base64ToBytes(line.body) : line.body;
        atLine(lineNo, () =>
          b.message({
            seq: line.seq,
            id: line.id,
            from: line.from,
            body,
            sentAt: line.sentAt,
            expiresAt: line.expiresAt,
            ...(line.toDevice !== undefined ? { toDevice: line.toDevice } : {}),
            ...(line.receipt ? { receipt: true } : {}),
          }),
        );
        break;
      }
      case 'end': {
        const c = b.counts;
        if (line.devices !== c.devices || line.messages !== c.messages || line.bytes !== c.bytes) {
          throw new PoboxError(
            'BAD_REQUEST',
            `import: line ${lineNo}: the end line counts ${line.devices} devices, ${line.messages} messages, ${line.bytes} bytes; the file holds ${c.devices}, ${c.messages}, ${c.bytes}`,
            { field: `line ${lineNo}` },
          );
        }
        ended = true;
        break;
      }
    }
  }
  if (!header || !builder) throw new PoboxError('BAD_REQUEST', 'import: the file is empty (no header line)', { field: 'line 1' });
  if (!ended) throw new PoboxError('BAD_REQUEST', `import: truncated: no end line after line ${lineNo}; nothing was imported`, { field: `line ${lineNo + 1}` });
  const b = builder;
  return { header, snapshot: atLine(lineNo, () => b.finish()) };
}

/**
 * Import NDJSON lines into `po`'s store: refused at once if the target mailbox is not
 * empty, then read and checked whole, then restored in one store call.
 */
export async function importLines(po: PostOffice, lines: AsyncIterable<string>, opts: ImportOptions = {}): Promise<ImportResult> {
  if (opts.user !== undefined) await assertEmpty(po, opts.user);
  const { header, snapshot } = await readImport(lines, po.importLimits(), opts);
  if (opts.user === undefined) await assertEmpty(po, snapshot.user);
  const r = await po.restore(snapshot);
  return { user: snapshot.user, from: header.user, epoch: snapshot.epoch, lastSeq: snapshot.lastSeq, ...r };
}

/** CONFLICT early, before a long file is read, when the mailbox is plainly not empty (the store checks again). */
async function assertEmpty(po: PostOffice, user: UserId): Promise<void> {
  const s = await po.stats(user);
  if (s.lastSeq > 0 || s.devices.length > 0) throw mailboxNotEmpty(user);
}
