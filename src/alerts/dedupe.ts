/**
 * Storm control in Redis: one suggestion per environment and incident. An incident is the alert's
 * fingerprint (group key, Datadog cycle key, Sentry issue, PagerDuty incident…) within its source;
 * alerts without one share a per-environment time window instead. The first alert to `claim` an
 * incident wins atomically (a Lua script: exists-or-create), so 1,000 concurrent alerts for one
 * incident — in one process or across replicas — produce exactly one suggestion.
 *
 * The incident record (a Redis hash) keeps what the suggestion posted (message refs, plan id, the
 * sentence) so a RESOLVED alert can edit it later. Whether that edit landed is kept too
 * (`resolvedEdit`): a RESOLVED whose edit failed (the chat API down) leaves the edit to the sender's
 * retry, instead of answering `resolved_unknown` while the suggestion still asks to roll back. Every
 * key expires (`incidentTtlMs` after the latest alert of the incident, shortened to `resolvedTtlMs`
 * once resolved, `anonymousWindowMs` after the first fingerprint-less alert) so memory stays bounded
 * however many incidents arrive.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type PlanRecord, planRecordSchema } from '../plan-store.js';
import { type MessageRef, messageRefSchema } from '../progress.js';
import type { RedisClient } from '../redis.js';

export interface AlertDedupeOptions {
  /** Key prefix (tests and benches use a unique one). Default `switchyard:alerts`. */
  readonly prefix?: string;
  /** How long an incident keeps deduplicating after its latest alert. Default 6 hours. */
  readonly incidentTtlMs?: number;
  /** How long a resolved incident is remembered (a repeated RESOLVED is absorbed). Default 10 minutes. */
  readonly resolvedTtlMs?: number;
  /** The window shared by alerts without a fingerprint, per environment. Default 10 minutes. */
  readonly anonymousWindowMs?: number;
}

/** Defaults for AlertDedupe's options (STYLE 6). */
export const alertDedupeDefaults = {
  prefix: 'switchyard:alerts',
  incidentTtlMs: 6 * 3_600_000,
  resolvedTtlMs: 10 * 60_000,
  anonymousWindowMs: 10 * 60_000,
} as const satisfies Required<AlertDedupeOptions>;

/** Identifies an incident within an environment. */
export interface IncidentKey {
  readonly environment: string;
  readonly source: string;
  /** Absent: the environment's time window stands in for the incident. */
  readonly fingerprint?: string;
}

export const IncidentState = {
  /** Claimed; the suggestion is being prepared. */
  pending: 'pending',
  /** A suggestion or note was posted (refs known). */
  posted: 'posted',
  /** The alert was linked to a running switch job. */
  linked: 'linked',
  /** Nothing was posted (no correlation, outside the window, refused); later alerts stay quiet. */
  skipped: 'skipped',
} as const;
export type IncidentState = (typeof IncidentState)[keyof typeof IncidentState];

export interface IncidentRecord {
  readonly state: IncidentState;
  readonly claimedAt: number;
  readonly refs: readonly MessageRef[];
  readonly planId?: string;
  /** The incident's id in the plan's alert list (PlanRecord.alerts), when the plan lists it. */
  readonly alertId?: string;
  readonly jobId?: string;
  readonly sentence?: string;
  readonly resolved: boolean;
  /**
   * Once resolved: whether the suggestion's "resolved" edit is still to come (`pending`: the claimant
   * or the resolver is on it), `done`, or `failed` (a retried RESOLVED edits again).
   */
  readonly resolvedEdit?: ResolvedEdit;
}

export const ResolvedEdit = { pending: 'pending', done: 'done', failed: 'failed' } as const;
export type ResolvedEdit = (typeof ResolvedEdit)[keyof typeof ResolvedEdit];

export type ClaimResult =
  | { readonly claimed: true }
  | { readonly claimed: false; readonly record: IncidentRecord | undefined };

/** What `complete` stores once the claimant has acted. */
export interface IncidentPatch {
  readonly state: Exclude<IncidentState, 'pending'>;
  readonly refs?: readonly MessageRef[];
  readonly planId?: string;
  readonly alertId?: string;
  readonly jobId?: string;
  readonly sentence?: string;
}

// ARGV: now, ttl, refresh (1: a duplicate extends the incident's life while it keeps firing).
// A resolved incident that fires again is a new occurrence: it is claimed afresh.
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'resolved') ~= '1' then
    if ARGV[3] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return redis.call('HGETALL', KEYS[1])
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'claimedAt', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return false`;

const COMPLETE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV))
if redis.call('HGET', KEYS[1], 'resolved') == '1' then return 1 end
return 0`;

// The first RESOLVED marks the incident resolved and takes the edit (resolvedEdit = pending). A later
// one gets the record only when the edit failed (resolvedEdit = failed): it takes the edit over, so
// exactly one retry edits at a time.
const RESOLVE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HGET', KEYS[1], 'resolved') == '1' then
  if redis.call('HGET', KEYS[1], 'resolvedEdit') ~= 'failed' then return false end
  redis.call('HSET', KEYS[1], 'resolvedEdit', 'pending')
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'resolved', '1', 'resolvedAt', ARGV[2], 'resolvedEdit', 'pending')
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or ttl > tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return redis.call('HGETALL', KEYS[1])`;

// Gives a claimed incident up (its post failed), unless a RESOLVED marked it meanwhile: that one is
// kept (skipped, its resolution standing) and 1 returned, so that no retry of the firing alert is asked
// for (it would claim the incident afresh and offer a rollback for an incident that resolved).
const RELEASE = `
if redis.call('HGET', KEYS[1], 'resolved') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'skipped')
  return 1
end
redis.call('DEL', KEYS[1])
return 0`;

// Records the outcome of the resolved edit, only on the resolved occurrence it was taken for (a record
// that expired or was replaced by a new occurrence is left alone).
const EDITED = `
if redis.call('HGET', KEYS[1], 'resolved') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'resolvedEdit', ARGV[1])
return 1`;

/** A Lua script run by SHA, loaded on first use (or after a SCRIPT FLUSH / failover). */
class Script {
  private readonly sha: string;
  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }
  async run(
    redis: RedisClient,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.includes('NOSCRIPT')) throw e;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

const claimScript = new Script(CLAIM);
const completeScript = new Script(COMPLETE);
const resolveScript = new Script(RESOLVE);
const editedScript = new Script(EDITED);
const releaseScript = new Script(RELEASE);

const refsSchema = z.array(messageRefSchema);

function toRecord(reply: unknown): IncidentRecord | undefined {
  if (!Array.isArray(reply) || reply.length === 0) return undefined;
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < reply.length; i += 2) h.set(String(reply[i]), String(reply[i + 1]));
  const stateText = h.get('state') ?? 'pending';
  const state = (Object.values(IncidentState) as string[]).includes(stateText)
    ? (stateText as IncidentState)
    : IncidentState.pending;
  let refs: MessageRef[] = [];
  const rawRefs = h.get('refs');
  if (rawRefs) {
    try {
      const parsed = refsSchema.safeParse(JSON.parse(rawRefs));
      if (parsed.success) refs = parsed.data;
    } catch {
      // A corrupt refs field only means the resolved edit cannot find its message.
    }
  }
  const planId = h.get('planId');
  const alertId = h.get('alertId');
  const jobId = h.get('jobId');
  const sentence = h.get('sentence');
  const editText = h.get('resolvedEdit');
  const resolvedEdit = (Object.values(ResolvedEdit) as string[]).includes(editText ?? '')
    ? (editText as ResolvedEdit)
    : undefined;
  return {
    state,
    claimedAt: Number(h.get('claimedAt') ?? 0),
    refs,
    ...(planId ? { planId } : {}),
    ...(alertId ? { alertId } : {}),
    ...(jobId ? { jobId } : {}),
    ...(sentence ? { sentence } : {}),
    resolved: h.get('resolved') === '1',
    ...(resolvedEdit ? { resolvedEdit } : {}),
  };
}

/**
 * How many replaced records of one plan id are kept (see `keepReplaced`): a plan made again every hour
 * while an incident of its first record keeps firing does not grow the hash without bound.
 */
const REPLACED_KEPT = 5;

/** A replaced plan record as kept for its alerts' resolutions (see `keepReplaced`). */
export interface ReplacedRecord {
  /** The record, its listed alerts marked resolved as they resolved since it was replaced. */
  readonly record: PlanRecord;
  /** Changes whenever another of its alerts resolves (an edit that saw an older one edits again). */
  readonly stamp: string;
}

/** Redis-backed incident deduplication (see the module header). */
export class AlertDedupe {
  private readonly prefix: string;
  /** How long an incident keeps deduplicating after its latest alert (`AlertDedupeOptions.incidentTtlMs`). */
  readonly incidentTtlMs: number;
  private readonly resolvedTtlMs: number;
  private readonly anonymousWindowMs: number;

  constructor(
    private readonly redis: RedisClient,
    opts: AlertDedupeOptions = {},
  ) {
    this.prefix = opts.prefix ?? alertDedupeDefaults.prefix;
    this.incidentTtlMs = opts.incidentTtlMs ?? alertDedupeDefaults.incidentTtlMs;
    this.resolvedTtlMs = opts.resolvedTtlMs ?? alertDedupeDefaults.resolvedTtlMs;
    this.anonymousWindowMs = opts.anonymousWindowMs ?? alertDedupeDefaults.anonymousWindowMs;
  }

  /**
   * Claims posting one message of `kind` about `id` in `place` (e.g. the link to a running job, per
   * channel): true for exactly one caller until `ttlMs` passed or `releasePost` gave it back. Across
   * replicas, like the incident claims.
   */
  async claimPost(kind: string, id: string, place: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.postKey(kind, id, place), '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** Gives a `claimPost` back (the post failed: a later alert may try again). */
  async releasePost(kind: string, id: string, place: string): Promise<void> {
    await this.redis.del(this.postKey(kind, id, place));
  }

  private postKey(kind: string, id: string, place: string): string {
    const h = createHash('sha256')
      .update(`${kind}\u0000${id}\u0000${place}`)
      .digest('base64url')
      .slice(0, 24);
    return `${this.prefix}:posted:${h}`;
  }

  /** The Redis key of an incident. Fingerprints are hashed: bounded length, any characters. */
  key(incident: IncidentKey): string {
    const env = encodeURIComponent(incident.environment);
    if (incident.fingerprint === undefined || incident.fingerprint === '') {
      return `${this.prefix}:incident:${env}:window`;
    }
    const id = createHash('sha256')
      .update(`${incident.source}\u0000${incident.fingerprint}`)
      .digest('base64url')
      .slice(0, 24);
    return `${this.prefix}:incident:${env}:${id}`;
  }

  /**
   * Atomically claims the incident: `claimed` for exactly one caller while the incident is open. A
   * duplicate of a fingerprinted incident extends its life (an incident that keeps firing — e.g.
   * Alertmanager's repeat_interval — never gets a second suggestion); the anonymous window does not
   * slide. Once resolved, the next firing alert claims a new occurrence.
   */
  async claim(incident: IncidentKey, now: number): Promise<ClaimResult> {
    const fingerprinted = Boolean(incident.fingerprint);
    const ttl = fingerprinted ? this.incidentTtlMs : this.anonymousWindowMs;
    const reply = await claimScript.run(
      this.redis,
      [this.key(incident)],
      [now, Math.max(1, Math.round(ttl)), fingerprinted ? 1 : 0],
    );
    if (reply === null) return { claimed: true };
    return { claimed: false, record: toRecord(reply) };
  }

  /**
   * Records what the claimant did. Returns `resolvedMeanwhile` when a RESOLVED alert for the incident
   * arrived while the suggestion was being posted, so the caller edits it straight away.
   */
  async complete(incident: IncidentKey, patch: IncidentPatch): Promise<{ resolvedMeanwhile: boolean }> {
    const args: string[] = ['state', patch.state];
    if (patch.refs !== undefined) args.push('refs', JSON.stringify(patch.refs));
    if (patch.planId !== undefined) args.push('planId', patch.planId);
    if (patch.alertId !== undefined) args.push('alertId', patch.alertId);
    if (patch.jobId !== undefined) args.push('jobId', patch.jobId);
    if (patch.sentence !== undefined) args.push('sentence', patch.sentence);
    const reply = await completeScript.run(this.redis, [this.key(incident)], args);
    return { resolvedMeanwhile: reply === 1 };
  }

  /**
   * Gives the incident up (posting failed), so a later alert may try again; unless it resolved while
   * its suggestion was being posted: then it is kept, resolved, and `resolvedMeanwhile` says so (the
   * firing alert is not to be retried).
   */
  async release(incident: IncidentKey): Promise<{ resolvedMeanwhile: boolean }> {
    const reply = await releaseScript.run(this.redis, [this.key(incident)], []);
    return { resolvedMeanwhile: reply === 1 };
  }

  /**
   * Marks the incident resolved and shortens its life. Returns the record to the caller that is to
   * edit the suggestion: the first RESOLVED, or a later one when that edit failed (`resolvedEdited`
   * with `false`). Undefined when unknown, or resolved and its edit done or under way. The caller
   * reports the edit with `resolvedEdited`.
   */
  async resolve(incident: IncidentKey, now: number): Promise<IncidentRecord | undefined> {
    const reply = await resolveScript.run(
      this.redis,
      [this.key(incident)],
      [Math.max(1, this.resolvedTtlMs), now],
    );
    return toRecord(reply);
  }

  /**
   * Records whether the suggestion now says the incident resolved. `false` lets the next RESOLVED
   * for the incident (the sender's retry) edit it again.
   */
  async resolvedEdited(incident: IncidentKey, ok: boolean): Promise<void> {
    await editedScript.run(this.redis, [this.key(incident)], [ok ? ResolvedEdit.done : ResolvedEdit.failed]);
  }

  /**
   * Keeps a plan record that a new request for the same switch replaced (same plan id, new record),
   * with its suggestion messages now closed: an incident it listed may resolve later, and its message,
   * which the new record does not know, must then say so (`resolveReplaced`). Kept as long as an
   * incident record is (`incidentTtlMs`, from the latest of the replacement, a repeat of one of its
   * incidents (`touchReplaced`) and a resolution); the newest REPLACED_KEPT records per plan id.
   * Returns the id under which it is kept.
   */
  async keepReplaced(old: PlanRecord): Promise<string> {
    const record = planRecordSchema.parse(old);
    const id = replacedId(record);
    const key = this.replacedKey(record.plan.id);
    await this.redis
      .multi()
      .hset(key, `rec:${id}`, JSON.stringify(record))
      .pexpire(key, this.replacedTtlMs())
      .exec();
    const fields = await this.redis.hkeys(key);
    const kept = fields
      .filter((f) => f.startsWith('rec:'))
      .map((f) => f.slice('rec:'.length))
      .sort((a, b) => Number.parseInt(b, 10) - Number.parseInt(a, 10));
    const dropped = kept.slice(REPLACED_KEPT);
    if (dropped.length > 0) {
      const gone = fields.filter((f) => dropped.some((d) => f === `rec:${d}` || f.startsWith(`res:${d}:`)));
      await this.redis.hdel(key, ...gone);
    }
    return id;
  }

  /** Keeps a plan id's replaced records (`keepReplaced`) while one of their incidents keeps firing. */
  async touchReplaced(planId: string): Promise<void> {
    await this.redis.pexpire(this.replacedKey(planId), this.replacedTtlMs());
  }

  /**
   * Marks `alertId` resolved at `at` on every replaced record of `planId` that lists it (a plan made
   * again with "Make a fresh plan" lists its alerts again, so several records, each with its closed
   * message, may list one). Returns those records' ids (for `replaced`), newest first; none when no
   * kept record lists the alert.
   */
  async resolveReplaced(planId: string, alertId: string, at: number): Promise<string[]> {
    const key = this.replacedKey(planId);
    const kept = await this.replacedRecords(planId);
    const hits = kept
      .filter((k) => k.record.alerts?.some((a) => a.id === alertId))
      .sort((a, b) => b.record.createdAt - a.record.createdAt);
    if (hits.length === 0) return [];
    // The first resolution stands (a retried RESOLVED does not move its time).
    const multi = this.redis.multi();
    for (const hit of hits) multi.hsetnx(key, `res:${hit.id}:${alertId}`, String(at));
    await multi.pexpire(key, this.replacedTtlMs()).exec();
    return hits.map((hit) => hit.id);
  }

  /** A kept replaced record (`keepReplaced`) with the resolutions of its alerts since; undefined when gone. */
  async replaced(planId: string, id: string): Promise<ReplacedRecord | undefined> {
    const kept = await this.replacedRecords(planId);
    const hit = kept.find((k) => k.id === id);
    if (hit === undefined) return undefined;
    const resolved = hit.resolutions;
    const record: PlanRecord = {
      ...hit.record,
      ...(hit.record.alerts === undefined
        ? {}
        : {
            alerts: hit.record.alerts.map((a) => {
              const when = resolved.get(a.id);
              return when === undefined || a.resolvedAt !== undefined ? a : { ...a, resolvedAt: when };
            }),
          }),
    };
    const stamp = [...resolved.keys()].sort().join(',');
    return { record, stamp };
  }

  private async replacedRecords(
    planId: string,
  ): Promise<{ id: string; record: PlanRecord; resolutions: Map<string, number> }[]> {
    const flat = await this.redis.hgetall(this.replacedKey(planId));
    const out: { id: string; record: PlanRecord; resolutions: Map<string, number> }[] = [];
    for (const [field, value] of Object.entries(flat)) {
      if (!field.startsWith('rec:')) continue;
      let parsed: ReturnType<typeof planRecordSchema.safeParse>;
      try {
        parsed = planRecordSchema.safeParse(JSON.parse(value));
      } catch {
        continue; // An unreadable record only means its message is not edited when its alerts resolve.
      }
      if (!parsed.success) continue;
      const id = field.slice('rec:'.length);
      const resolutions = new Map<string, number>();
      for (const [f, v] of Object.entries(flat)) {
        const prefix = `res:${id}:`;
        const at = Number(v);
        if (f.startsWith(prefix) && Number.isFinite(at)) resolutions.set(f.slice(prefix.length), at);
      }
      out.push({ id, record: parsed.data, resolutions });
    }
    return out;
  }

  /** How long a plan id's replaced records are kept (PEXPIRE: a whole number of ms, at least 1). */
  private replacedTtlMs(): number {
    return Math.max(1, Math.round(this.incidentTtlMs));
  }

  private replacedKey(planId: string): string {
    return `${this.prefix}:replaced:${encodeURIComponent(planId)}`;
  }

  /** The incident's record, if it is still remembered. */
  async get(incident: IncidentKey): Promise<IncidentRecord | undefined> {
    const flat = await this.redis.hgetall(this.key(incident));
    return toRecord(Object.entries(flat).flat());
  }
}

/** Which record under a plan id a replaced record was: when it was made, and its generation. */
function replacedId(record: PlanRecord): string {
  return `${record.createdAt}:${record.generation ?? ''}`;
}
