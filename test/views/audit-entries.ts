/**
 * Audit entries as Switchyard writes them (Flow in src/flow.ts: requests, confirms, approvals,
 * cancels, expiries; the switch worker in jobs/switch-processor.ts: started and the end), for the
 * /deployments view tests. Each builder returns one request's entries newest first; `history` merges
 * requests into the stream's order (newest first).
 */
import type { AuditEntry } from '../../src/audit.js';
import type { Actor } from '../../src/progress.js';

const MIN = 60_000;

/** The alert bot (src/alerts/service.ts `ALERT_ACTOR`). */
export const alertBot: Actor = {
  surface: 'system',
  userId: 'switchyard-alerts',
  displayName: 'Switchyard alerts',
};

export interface RequestSpec {
  /** When it was asked for; later entries follow a minute apart. */
  readonly at: number;
  readonly action?: 'rollback' | 'promote';
  readonly planId: string;
  readonly targetId: string;
  readonly fromId: string;
  /** Who asked; an alert's suggestion when `alert` is given. */
  readonly asked?: Actor;
  readonly alert?: { readonly title: string; readonly source: string };
}

export interface SwitchSpec extends RequestSpec {
  readonly confirmed: Actor;
  /** A second person's approval (two-person rule): the confirm then waits for it. */
  readonly approved?: Actor;
  readonly end?: 'succeeded' | 'failed' | 'refused' | 'running' | 'queued';
  readonly code?: string;
}

function base(s: RequestSpec) {
  return {
    environment: 'production',
    action: s.action ?? 'rollback',
    planId: s.planId,
    targetId: s.targetId,
    fromId: s.fromId,
  } as const;
}

function requestEntry(s: RequestSpec): AuditEntry {
  const action = s.action ?? 'rollback';
  return {
    ...base(s),
    at: s.at,
    event: 'requested',
    actor: s.alert === undefined ? (s.asked ?? alertBot) : alertBot,
    ...(s.alert === undefined
      ? { stage: 'asked' as const }
      : { stage: 'suggested' as const, alert: s.alert }),
    message:
      s.alert === undefined
        ? `asked for a ${action} to ${s.targetId}`
        : `suggested after alert "${s.alert.title}" (${s.alert.source})`,
  };
}

/** `e` as versions before session 13 wrote it: its stage and alert said in `message` only. */
export function withoutStage(e: AuditEntry): AuditEntry {
  const { stage: _stage, alert: _alert, ...rest } = e;
  return rest;
}

/** A request that was queued (and ran, as far as `end` says): oldest entry first in time. */
export function switchEntries(s: SwitchSpec): AuditEntry[] {
  const action = s.action ?? 'rollback';
  const jobId = `sw_${s.planId}`;
  // A minute between the clicks, a second from the approval to the worker's start, a minute to the end.
  const confirmAt = s.at + MIN;
  const approveAt = s.approved === undefined ? confirmAt : confirmAt + MIN;
  const startAt = approveAt + 1000;
  const out: AuditEntry[] = [requestEntry(s)];
  if (s.approved !== undefined) {
    out.push({
      ...base(s),
      at: confirmAt,
      event: 'requested',
      actor: s.confirmed,
      stage: 'confirmed',
      message: `confirmed by ${s.confirmed.displayName}; waiting for a second permitted person to approve`,
    });
  }
  out.push({
    ...base(s),
    at: approveAt,
    event: 'approved',
    actor: s.approved ?? s.confirmed,
    jobId,
    message:
      s.approved === undefined
        ? `${s.confirmed.displayName} confirmed the ${action} to ${s.targetId}`
        : `${s.approved.displayName} approved the ${action} requested by ${s.confirmed.displayName}`,
  });
  const end = s.end ?? 'succeeded';
  if (end === 'queued') return out.reverse();
  // (A job the worker refuses, out of date when its turn came, has started too: it checks first.)
  out.push({ ...base(s), at: startAt, event: 'started', actor: s.confirmed, jobId });
  if (end === 'running') return out.reverse();
  out.push({
    ...base(s),
    at: startAt + MIN,
    event: end,
    actor: s.confirmed,
    jobId,
    ...(s.code === undefined ? {} : { code: s.code }),
    message: 'The whole final message of the job, long and detailed: where every domain was when it ended…',
  });
  return out.reverse();
}

/** A request that expired: `confirmed` when it lapsed waiting for approval. */
export function expiredEntries(s: RequestSpec & { readonly confirmed?: Actor }): AuditEntry[] {
  const out: AuditEntry[] = [requestEntry(s)];
  if (s.confirmed !== undefined) {
    out.push({
      ...base(s),
      at: s.at + MIN,
      event: 'requested',
      actor: s.confirmed,
      stage: 'confirmed',
      message: `confirmed by ${s.confirmed.displayName}; waiting for a second permitted person to approve`,
    });
  }
  out.push({
    ...base(s),
    at: s.at + 60 * MIN,
    event: 'cancelled',
    code: 'expired',
    message: `expired at …: nobody confirmed the ${s.action ?? 'rollback'} to ${s.targetId} within 60 minutes; nothing was changed`,
  });
  return out.reverse();
}

/** A request cancelled (or dismissed) by `by`. */
export function cancelledEntries(
  s: RequestSpec & { readonly by: Actor; readonly dismissed?: boolean },
): AuditEntry[] {
  const verb = s.dismissed === true ? 'dismissed' : 'cancelled';
  return [
    {
      ...base(s),
      at: s.at + 2 * MIN,
      event: 'cancelled',
      actor: s.by,
      message: `${s.by.displayName} ${verb} the ${s.action ?? 'rollback'} to ${s.targetId}`,
    },
    requestEntry(s),
  ];
}

/** A request still open (nobody confirmed it yet). */
export function openEntries(s: RequestSpec): AuditEntry[] {
  return [requestEntry(s)];
}

/** Requests merged into the stream's order: newest first (by time, as written one after the other). */
export function history(...requests: AuditEntry[][]): AuditEntry[] {
  return requests.flat().sort((a, z) => z.at - a.at);
}

/** A refused click, as the refusals stream holds it (Flow's `recordRefusal`). */
export function refusedClick(at: number, actor: Actor, code: string, message: string): AuditEntry {
  return {
    at,
    environment: 'production',
    action: 'rollback',
    event: 'refused',
    actor,
    planId: 'p_refused',
    targetId: 'dep_2',
    fromId: 'dep_3',
    code,
    message,
  };
}
