/**
 * The audit log: every rollback/promote requested, approved, refused, cancelled, started, succeeded or
 * failed, with who, when, what and why. One bounded Redis stream per environment (`XADD MAXLEN ~`), so
 * any replica can write and `/deployments` can list an environment's recent history. Entries are
 * zod-parsed on write and on read; an entry that no longer parses is skipped, never fatal. A message
 * longer than the schema allows is clipped on append (ending in `…`), never a reason to drop the entry.
 *
 * Refused clicks (`appendRefusal`) go to a second bounded stream per environment, once per person, plan
 * (generation) and reason within a window, later repeats only counted. Anyone who can see a
 * confirmation can press its buttons (a Slack Connect partner, a guest, any member of a Discord server),
 * so their refusals must never push the environment's history (`recent`: who rolled back, whether a
 * traffic move was Switchyard's own) out of the window its readers read, or out of Redis: a flood of
 * refusals trims only older refusals.
 */

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { actorSchema } from './progress.js';
import type { RedisClient } from './redis.js';

/** What happened to a switch request. */
export const auditEventSchema = z.enum([
  'requested',
  'approved',
  'refused',
  'cancelled',
  'started',
  'succeeded',
  'failed',
]);
export type AuditEvent = z.infer<typeof auditEventSchema>;

/** Longest `message` an audit entry keeps (`AuditLog.append` clips longer ones). */
export const AUDIT_MESSAGE_MAX = 2000;

/** `message` clipped to `max` characters, ending in `…` when it was longer (never splits a surrogate pair). */
export function clipMessage(message: string, max = AUDIT_MESSAGE_MAX): string {
  if (message.length <= max) return message;
  let head = message.slice(0, max - 1);
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${head}…`;
}

/** One audit entry: who (`actor`), when (`at`), what (action, plan, target) and why (code, message). */
export const auditEntrySchema = z.object({
  /** Unix ms. */
  at: z.number().int().nonnegative(),
  environment: z.string().min(1),
  action: z.enum(['rollback', 'promote']),
  event: auditEventSchema,
  actor: actorSchema.optional(),
  planId: z.string().optional(),
  jobId: z.string().optional(),
  targetId: z.string().optional(),
  fromId: z.string().optional(),
  /** Refusal or error code (why). */
  code: z.string().optional(),
  /** Human sentence (why, or the final state). */
  message: z.string().max(AUDIT_MESSAGE_MAX).optional(),
  /**
   * Which `requested` entry this is (written since session 13; older entries say it only in `message`):
   * a person's request, an alert's suggestion, or a confirm waiting for a second person's approval.
   */
  stage: z.enum(['asked', 'suggested', 'confirmed']).optional(),
  /** The alert a suggestion was made after. */
  alert: z.object({ title: z.string().max(500), source: z.string().max(100) }).optional(),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** A refused click (`AuditLog.appendRefusal`): who was refused, on which plan, and why. */
export const refusalEntrySchema = auditEntrySchema.extend({
  event: z.literal('refused', { error: 'expected event "refused"' }),
  actor: actorSchema,
  planId: z.string({ error: 'expected the id of the plan clicked' }).min(1),
  code: z.string({ error: 'expected the refusal code' }).min(1),
});
export type RefusalEntry = z.infer<typeof refusalEntrySchema>;

/** Outcome of `AuditLog.appendRefusal`. */
export interface RefusalAppend {
  /** The entry was written (false: the same refusal was recorded within the window, and counted). */
  readonly written: boolean;
  /** The stream id of the entry recording this refusal ('' when it could not be told). */
  readonly id: string;
  /** How many times this refusal came within the window, this one included. */
  readonly count: number;
}

/**
 * Records refusal ARGV[2] in the refusals stream KEYS[2] (MAXLEN ~ ARGV[1]) unless the same refusal's
 * marker KEYS[1] (a hash: `id` of the entry, `n` refusals counted) is there; creates the marker, kept
 * ARGV[3] ms from the first refusal. Returns {written, id, count}.
 */
const APPEND_REFUSAL = `
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 then
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
  redis.call('HSET', KEYS[1], 'id', id)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, id, n}
end
return {0, redis.call('HGET', KEYS[1], 'id') or '', n}
`;

/** Redis's TIME reply: seconds and microseconds, as decimal strings. */
const redisTimeSchema = z.tuple([z.string().regex(/^\d+$/), z.string().regex(/^\d+$/)], {
  error: 'expected the TIME reply: [seconds, microseconds]',
});
/** XREVRANGE's reply: [id, [field, value, …]] per entry. */
const streamRowsSchema = z.array(z.tuple([z.string(), z.array(z.string())]), {
  error: 'expected the XREVRANGE reply: [id, fields] per entry',
});

/** An entry with the time Redis wrote it (its stream id's milliseconds: Redis's clock). */
export interface WrittenEntry {
  readonly entry: AuditEntry;
  readonly writtenAt: number;
}

/** The newest entries of an environment as `AuditLog.recentWritten` reads them. */
export interface WrittenEntries {
  /** Newest first, as `recent` gives them. */
  readonly entries: readonly WrittenEntry[];
  /** The time of Redis's clock (the one `writtenAt` is on) when they were read. */
  readonly readAt: number;
}

/** The newest entries of an environment as `AuditLog.recentWindow` reads them. */
export interface AuditWindow extends WrittenEntries {
  /** The read reached the oldest entry kept: `entries` is the whole history (the unreadable aside). */
  readonly complete: boolean;
}

/** Options of `AuditLog`. */
export interface AuditLogOptions {
  /** Key prefix; streams are `<prefix>:audit:<environment>` (and `…:refused`, see `refusalsKey`). */
  readonly prefix?: string;
  /** Approximate number of entries kept per environment. */
  readonly maxLen?: number;
  /** Approximate number of refused clicks kept per environment (apart from the history). */
  readonly refusalsMaxLen?: number;
  /** Within this many ms of a refusal, the same person's same refusal on the same plan is only counted. */
  readonly refusalWindowMs?: number;
}

/** Defaults of `AuditLogOptions`. */
export const auditLogDefaults = {
  prefix: 'switchyard',
  maxLen: 1000,
  refusalsMaxLen: 200,
  // As long as a plan may be acted on by default (src/plan-store.ts, `ttlMs`): a person pressing a
  // button they may not press is recorded once per plan, however often they press it.
  refusalWindowMs: 3_600_000,
} as const satisfies Required<AuditLogOptions>;

/** Append-only, bounded audit history per environment. */
export class AuditLog {
  private readonly prefix: string;
  private readonly maxLen: number;
  private readonly refusalsMaxLen: number;
  private readonly refusalWindowMs: number;

  constructor(
    private readonly redis: RedisClient,
    opts: AuditLogOptions = {},
  ) {
    this.prefix = opts.prefix ?? auditLogDefaults.prefix;
    this.maxLen = opts.maxLen ?? auditLogDefaults.maxLen;
    this.refusalsMaxLen = opts.refusalsMaxLen ?? auditLogDefaults.refusalsMaxLen;
    this.refusalWindowMs = opts.refusalWindowMs ?? auditLogDefaults.refusalWindowMs;
  }

  /** The stream key of an environment. */
  key(environment: string): string {
    return `${this.prefix}:audit:${environment}`;
  }

  /** The stream key of an environment's refused clicks (environment slugs have no `:`). */
  refusalsKey(environment: string): string {
    return `${this.key(environment)}:refused`;
  }

  /**
   * Records a refused click once per person, plan generation (`generation`: a new request for the
   * same plan id is a new generation, '' when unknown) and refusal code within the refusal window;
   * a repeat is counted, not written. Refusals go to their own stream (`refusals`), never to the
   * history `recent` reads, so no number of them evicts a real entry. A too long message is clipped;
   * any other bad input throws a zod error naming the field.
   */
  async appendRefusal(entry: RefusalEntry, generation = ''): Promise<RefusalAppend> {
    const parsed = refusalEntrySchema.parse(
      typeof entry.message === 'string' ? { ...entry, message: clipMessage(entry.message) } : entry,
    );
    const once = createHash('sha256')
      .update(
        JSON.stringify([parsed.actor.surface, parsed.actor.userId, parsed.planId, generation, parsed.code]),
      )
      .digest('base64url')
      .slice(0, 22);
    const stream = this.refusalsKey(parsed.environment);
    const res = (await this.redis.eval(
      APPEND_REFUSAL,
      2,
      `${stream}:${once}`,
      stream,
      String(this.refusalsMaxLen),
      JSON.stringify(parsed),
      String(this.refusalWindowMs),
    )) as [number, string, number];
    return {
      written: res[0] === 1,
      id: typeof res[1] === 'string' ? res[1] : '',
      count: Number(res[2]) || 1,
    };
  }

  /** The environment's most recent refused clicks, newest first (see `appendRefusal`). */
  async refusals(environment: string, limit = 20): Promise<AuditEntry[]> {
    return this.read(this.refusalsKey(environment), limit);
  }

  /**
   * Appends one entry; returns the stream id. A too long message is clipped (see `clipMessage`); any
   * other bad input throws a zod error naming the field.
   */
  async append(entry: AuditEntry): Promise<string> {
    const parsed = auditEntrySchema.parse(
      typeof entry.message === 'string' ? { ...entry, message: clipMessage(entry.message) } : entry,
    );
    const id = await this.redis.xadd(
      this.key(parsed.environment),
      'MAXLEN',
      '~',
      String(this.maxLen),
      '*',
      'e',
      JSON.stringify(parsed),
    );
    return id ?? '';
  }

  /**
   * The environment's most recent entries, newest first: its history, without the refused clicks
   * `appendRefusal` records (see `refusals`).
   */
  async recent(environment: string, limit = 20): Promise<AuditEntry[]> {
    return this.read(this.key(environment), limit);
  }

  /**
   * `recentWritten`, saying whether the read reached the stream's oldest entry (`complete`: fewer rows
   * than asked for came back), so a reader knows whether what it read is the whole history kept. A row
   * that no longer parses is skipped, as in `recent`, but counts as read. `/deployments` tells the
   * moves Switchyard made from those it did not by the times Redis wrote the entries (see
   * `recentWritten`).
   */
  async recentWindow(environment: string, limit = 20): Promise<AuditWindow> {
    const read = await this.readWritten(environment, limit);
    return { entries: read.entries, readAt: read.readAt, complete: read.rows < clampLimit(limit) };
  }

  /**
   * `recent`, with the time Redis wrote each entry and the time Redis read them, both on the clock of
   * the Redis that holds the stream: one clock for every writer, whatever the writers' own clocks say
   * (an entry's `at` is its writer's). The notices tell a Switchyard job's own traffic move by them.
   */
  async recentWritten(environment: string, limit = 20): Promise<WrittenEntries> {
    const { entries, readAt } = await this.readWritten(environment, limit);
    return { entries, readAt };
  }

  /** `recentWritten`, with how many rows the read returned (the unparseable included). */
  private async readWritten(environment: string, limit: number): Promise<WrittenEntries & { rows: number }> {
    // One transaction, so Redis's time is read on the node that holds the stream (a cluster's nodes
    // each have their own clock: the stream's ids are stamped by that node's), with the entries.
    const res = await this.redis
      .multi()
      .time()
      .xrevrange(this.key(environment), '+', '-', 'COUNT', clampLimit(limit))
      .exec();
    const failed = res?.find(([err]) => err !== null)?.[0];
    if (res === null || failed) throw failed ?? new Error('reading the audit: the transaction was discarded');
    const [seconds, micros] = redisTimeSchema.parse(res[0]?.[1]);
    const rows = streamRowsSchema.parse(res[1]?.[1]);
    const readAt = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const entries: WrittenEntry[] = [];
    for (const [id, fields] of rows) {
      const entry = parseRow(fields);
      // A stream id is `<ms>-<seq>`, the ms of Redis's clock when it was added (never going back).
      const writtenAt = Number(id.split('-')[0]);
      if (entry !== undefined && Number.isSafeInteger(writtenAt)) entries.push({ entry, writtenAt });
    }
    return { entries, readAt, rows: rows.length };
  }

  /** The newest `limit` parseable entries of stream `key`, newest first. */
  private async read(key: string, limit: number): Promise<AuditEntry[]> {
    return parseRows(await this.redis.xrevrange(key, '+', '-', 'COUNT', clampLimit(limit)));
  }
}

/** The entries of XREVRANGE rows that parse, in their order. */
function parseRows(rows: readonly [string, string[]][]): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (const [, fields] of rows) {
    const entry = parseRow(fields);
    if (entry !== undefined) out.push(entry);
  }
  return out;
}

function clampLimit(limit: number): number {
  return Math.max(1, Math.min(limit, 1000));
}

/** The entry of one stream row (its `e` field), or undefined when it does not parse. */
function parseRow(fields: readonly string[]): AuditEntry | undefined {
  const idx = fields.indexOf('e');
  const raw = idx >= 0 ? fields[idx + 1] : undefined;
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const entry = auditEntrySchema.safeParse(json);
  return entry.success ? entry.data : undefined;
}
