/**
 * The audit log: every rollback/promote requested, approved, refused, cancelled, started, succeeded or
 * failed, with who, when, what and why. One bounded Redis stream per environment (`XADD MAXLEN ~`), so
 * any replica can write and `/deployments` can list an environment's recent history. Entries are
 * zod-parsed on write and on read; an entry that no longer parses is skipped, never fatal. A message
 * longer than the schema allows is clipped on append (ending in `…`), never a reason to drop the entry.
 */

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
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** Options of `AuditLog`. */
export interface AuditLogOptions {
  /** Key prefix; streams are `<prefix>:audit:<environment>`. */
  readonly prefix?: string;
  /** Approximate number of entries kept per environment. */
  readonly maxLen?: number;
}

/** Append-only, bounded audit history per environment. */
export class AuditLog {
  private readonly prefix: string;
  private readonly maxLen: number;

  constructor(
    private readonly redis: RedisClient,
    opts: AuditLogOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'switchyard';
    this.maxLen = opts.maxLen ?? 1000;
  }

  /** The stream key of an environment. */
  key(environment: string): string {
    return `${this.prefix}:audit:${environment}`;
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

  /** The environment's most recent entries, newest first. */
  async recent(environment: string, limit = 20): Promise<AuditEntry[]> {
    const rows = await this.redis.xrevrange(
      this.key(environment),
      '+',
      '-',
      'COUNT',
      Math.max(1, Math.min(limit, 1000)),
    );
    const out: AuditEntry[] = [];
    for (const [, fields] of rows) {
      const idx = fields.indexOf('e');
      const raw = idx >= 0 ? fields[idx + 1] : undefined;
      if (raw === undefined) continue;
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        continue;
      }
      const entry = auditEntrySchema.safeParse(json);
      if (entry.success) out.push(entry.data);
    }
    return out;
  }
}
