/**
 * The history part of `/deployments` (`deploymentsView`, src/views/model.ts), as the on-call reads it
 * the day after an incident. The audit log (src/audit.ts) writes several entries per switch (asked
 * for, confirmed and waiting for approval, approved, started, succeeded), so a list of raw entries
 * held one switch in five lines and lost the switches among expiries and requests. Here the entries
 * are grouped into one line per request (a plan asked for once), in the order the stream holds them:
 *
 * - switches: requests that were queued or ran, one line each (what moved where, from what, the
 *   outcome, who asked, confirmed and approved, the alert it was suggested after), with the moves the
 *   platform's live history records that Switchyard did not make (automatic deploys, a rollback or
 *   promote on the platform's own dashboard or API) placed among them by time;
 * - other requests: cancelled, expired, out of date, or still open;
 * - refused clicks (their own stream), said briefly: who was refused on what, and why in a few words.
 *
 * Nothing is guessed: a line names only the people the entries record (an expiry names nobody: time
 * ran out), and a move is said to be outside Switchyard only when the history read reaches back to it.
 *
 * A move is matched to a switch by time. An entry's `at` is its writer's clock (the worker's, for a
 * switch's start), a move's `since` the platform's (the bot's own, for the local platform in the bot):
 * a worker a minute and a half ahead would read as starting after the move it made, one two hours
 * behind as starting before the hour that explains it. So when the audit says when Redis wrote each entry
 * (`writtenAt`, one clock for every writer) and how far Redis's clock was from this process's at the
 * read (`redisAheadMs`), moves and entries are compared on Redis's clock, as the notices compare them.
 */
import type { LiveEntry, PlanAction } from '../domain/types.js';
import { b, c, formatTime, type PersonLike, person, t, truncate } from './format.js';
import type { ListItem, Span } from './types.js';

/** Structural shape of an audit entry (the audit module owns the real type). */
export interface AuditEntryLike {
  /** Unix ms, on the clock of the process that wrote it. */
  readonly at: number;
  /** When Redis wrote it (its stream id's ms, on Redis's clock), when the audit says. */
  readonly writtenAt?: number | undefined;
  readonly event: string;
  // (`| undefined`: zod's optional fields, as src/audit.ts parses them, may hold it.)
  readonly action?: PlanAction | undefined;
  /** An audit actor (surface and id): named by mention. */
  readonly actor?: PersonLike | undefined;
  readonly planId?: string | undefined;
  readonly jobId?: string | undefined;
  readonly targetId?: string | undefined;
  readonly fromId?: string | undefined;
  /** Refusal or error code. */
  readonly code?: string | undefined;
  readonly message?: string | undefined;
  /** Which `requested` entry (newer entries; older ones say it in `message` only). */
  readonly stage?: 'asked' | 'suggested' | 'confirmed' | undefined;
  /** The alert a suggestion was made after (newer entries). */
  readonly alert?: { readonly title: string; readonly source: string } | undefined;
}

// Codes of entries src/flow.ts writes (it owns them; views do not depend on it).
const EXPIRED = 'expired';
const ENQUEUE_FAILED = 'enqueue_failed';
const COPY_DISMISSED = 'copy_dismissed';
const PLAN_STALE = 'plan_stale';

/**
 * How far the times compared may be off and still match: a move may read up to this long before the
 * start of the switch that made it (or after its failure). On Redis's clock only a platform stamping
 * with its own clock (a remote API) differs; on the writers' clocks, a worker's clock too. The notices
 * allow the same minute.
 */
const CLOCK_SKEW_MS = 60_000;
/** How long before a move a switch's start may be and still explain it (the notices' window). */
const EXPLAIN_WINDOW_MS = 3_600_000;
/** Longest alert title a line quotes. */
const ALERT_TITLE_MAX = 32;
/** Deployment ids a line of consecutive automatic deploys names. */
const DEPLOY_IDS_SHOWN = 3;

/** One line of the history, with the time it is ordered by. */
interface Line {
  readonly at: number;
  readonly item: ListItem;
  /** The deployment an automatic deploy put live: consecutive ones share one line. */
  readonly deploy?: string;
}

/** What the history part of `/deployments` shows. */
export interface HistoryLists {
  /** Switches and moves outside Switchyard, newest first (all of them: the caller picks how many). */
  readonly switches: readonly ListItem[];
  /** Requests that did not switch (cancelled, expired, out of date, open), newest first. */
  readonly others: readonly ListItem[];
}

/** Inputs of `historyLists`. */
export interface HistoryInput {
  /** The audit entries read, newest first (the stream's order: the order they were written). */
  readonly audit: readonly AuditEntryLike[];
  /** The platform's live history of the environment, oldest first. */
  readonly liveHistory: readonly LiveEntry[];
  /** The entries read are only the newest of a longer history (older ones were not read). */
  readonly auditTruncated: boolean;
  /**
   * How far Redis's clock was ahead of this process's (which the live history's times are taken to be
   * on) when `audit` was read; with the entries' `writtenAt`, moves and entries are compared on
   * Redis's clock. Undefined: on the entries' own times.
   */
  readonly redisAheadMs?: number | undefined;
  /** A refusal code's headline ("Not allowed"): refusalView's words. */
  readonly refusalTitle: (code: string) => string;
}

/** A request: the entries of one plan from its request to its end, oldest first. */
interface Request {
  readonly entries: AuditEntryLike[];
  /** A later request for the same plan came without an end of this one in the history. */
  superseded: boolean;
}

/** The kinds of entry a request line is built from. */
interface Parts {
  /** The entry asking for it (a person's request, or an alert's suggestion). */
  readonly request?: AuditEntryLike;
  /** A confirm that waits for a second person (two-person rule). */
  readonly confirmation?: AuditEntryLike;
  /** The last approval (a confirm, or a second person's approval, that claimed the plan). */
  readonly approval?: AuditEntryLike;
  /** The approval was not queued after all (enqueue failed since). */
  readonly approvalUndone: boolean;
  readonly started?: AuditEntryLike;
  /** The worker's end of the switch (succeeded, failed, refused). */
  readonly end?: AuditEntryLike;
  /** The entry that closed a request without a switch (cancelled, expired, out of date). */
  readonly closed?: AuditEntryLike;
  readonly last: AuditEntryLike;
}

/**
 * Whether `e` asks for a plan (a person's request or an alert's suggestion): a new request for a plan
 * id already seen is a new generation of it (the same switch asked for again). Entries written before
 * `stage` existed are told by Flow's words.
 */
function asksForPlan(e: AuditEntryLike): boolean {
  if (e.event !== 'requested' || e.jobId !== undefined) return false;
  if (e.stage !== undefined) return e.stage !== 'confirmed';
  return (
    e.message !== undefined &&
    (e.message.startsWith('asked for a ') || e.message.startsWith('suggested after alert '))
  );
}

/** Whether `e` is a confirm waiting for a second person's approval (`stage`, or older entries' words). */
function confirmsPlan(e: AuditEntryLike): boolean {
  return e.stage === undefined ? e.message?.startsWith('confirmed by ') === true : e.stage === 'confirmed';
}

/** Whether `e` ends its request: the switch's end, or the plan closed without one. */
function endsRequest(e: AuditEntryLike): boolean {
  switch (e.event) {
    case 'succeeded':
      return true;
    case 'failed':
      // An approval that could not be queued leaves the plan open again.
      return e.code !== ENQUEUE_FAILED;
    case 'refused':
      // The worker's refusal (a job's end), or a click that found the plan out of date (Flow's
      // markStale: the plan is stale, with the code of what changed, plan_stale or another, such as
      // target_stopped). Refused clicks that change nothing go to their own stream.
      return true;
    case 'cancelled':
      // A dismiss of one of the plan's messages leaves the plan open.
      return e.code !== COPY_DISMISSED;
    default:
      return false;
  }
}

/** The entries grouped into requests, oldest first, from `audit` newest first. */
function requestsOf(audit: readonly AuditEntryLike[]): Request[] {
  const requests: Request[] = [];
  const open = new Map<string, Request>();
  let loose = 0;
  for (const e of [...audit].reverse()) {
    const key = e.planId ?? (e.jobId === undefined ? `#${loose++}` : `job:${e.jobId}`);
    let r = open.get(key);
    if (r !== undefined && asksForPlan(e)) {
      r.superseded = true;
      r = undefined;
    }
    if (r === undefined) {
      r = { entries: [], superseded: false };
      requests.push(r);
      open.set(key, r);
    }
    r.entries.push(e);
    if (endsRequest(e)) open.delete(key);
  }
  return requests;
}

function partsOf(r: Request): Parts {
  let request: AuditEntryLike | undefined;
  let confirmation: AuditEntryLike | undefined;
  let approval: AuditEntryLike | undefined;
  let approvalUndone = false;
  let started: AuditEntryLike | undefined;
  let end: AuditEntryLike | undefined;
  let closed: AuditEntryLike | undefined;
  for (const e of r.entries) {
    switch (e.event) {
      case 'requested':
        // A `requested` entry with a job id is the queue's own (older versions wrote one on enqueue).
        if (e.jobId !== undefined) break;
        // The entry's stage (or, in older entries, Flow's words) tells the request from a confirm
        // waiting for approval; otherwise (another version's words) the first is the request and the
        // next the confirm.
        if (asksForPlan(e)) request ??= e;
        else if (confirmsPlan(e)) confirmation ??= e;
        else if (request === undefined && confirmation === undefined) request = e;
        else confirmation ??= e;
        break;
      case 'approved':
        approval = e;
        approvalUndone = false;
        break;
      case 'started':
        started ??= e;
        break;
      case 'failed':
        if (e.code === ENQUEUE_FAILED) approvalUndone = true;
        else end = e;
        break;
      case 'succeeded':
        end = e;
        break;
      case 'refused':
        if (e.jobId !== undefined) end = e;
        else closed = e;
        break;
      case 'cancelled':
        if (e.code !== COPY_DISMISSED) closed = e;
        break;
      default:
        break;
    }
  }
  const last = r.entries[r.entries.length - 1] as AuditEntryLike;
  return {
    ...(request === undefined ? {} : { request }),
    ...(confirmation === undefined ? {} : { confirmation }),
    ...(approval === undefined ? {} : { approval }),
    approvalUndone,
    ...(started === undefined ? {} : { started }),
    ...(end === undefined ? {} : { end }),
    ...(closed === undefined ? {} : { closed }),
    last,
  };
}

/** A request that was queued or ran (a switch), rather than one closed or still open before that. */
function isSwitch(p: Parts): boolean {
  if (p.started !== undefined || p.end !== undefined) return true;
  return p.approval !== undefined && !p.approvalUndone && p.closed === undefined;
}

function samePerson(a: PersonLike | undefined, z: PersonLike | undefined): boolean {
  if (a === undefined || z === undefined) return false;
  if (a.surface !== undefined && a.userId !== undefined && z.surface !== undefined && z.userId !== undefined)
    return a.surface === z.surface && a.userId === z.userId;
  return a.displayName === z.displayName;
}

/** Switchyard itself (the alert bot): it suggests, it is never said to have asked. */
function isSystem(a: PersonLike | undefined): boolean {
  return a?.surface === 'system';
}

/** Who asked, confirmed and approved, as recorded. */
interface People {
  readonly asked?: PersonLike;
  readonly confirmed?: PersonLike;
  readonly approved?: PersonLike;
}

function peopleOf(p: Parts, approvalCounts: boolean): People {
  // The worker records the switch in the name of the confirmer (or the asker when nobody confirmed).
  const worker = (p.started ?? p.end)?.actor;
  const asked = isSystem(p.request?.actor) ? undefined : p.request?.actor;
  let confirmed = p.confirmation?.actor;
  let approved: PersonLike | undefined;
  const approver = approvalCounts ? p.approval?.actor : undefined;
  if (confirmed !== undefined) approved = approver;
  else if (worker !== undefined && !isSystem(worker)) {
    confirmed = worker;
    approved = approver;
  } else if (approver !== undefined) {
    // One person's confirm claims the plan: its `approved` entry is the confirm. Without the request
    // read (older than the history read), it may be a second person's approval: said as recorded.
    if (p.request !== undefined) confirmed = approver;
    else approved = approver;
  }
  return {
    ...(asked === undefined ? {} : { asked }),
    ...(confirmed === undefined ? {} : { confirmed }),
    ...(approved === undefined || samePerson(approved, confirmed) ? {} : { approved }),
  };
}

/**
 * " · by A" / " · asked by A, confirmed by B" / ", approved by C": who the entries name. A switch is
 * "by" whoever confirmed it (the person it was queued for) unless someone else asked for it.
 */
function peopleSpans(people: People, isSwitchLine: boolean): Span[] {
  const out: Span[] = [];
  const { asked, confirmed, approved } = people;
  if (confirmed !== undefined && isSwitchLine && (asked === undefined || samePerson(asked, confirmed))) {
    out.push(t(' · by '), person(confirmed));
  } else if (confirmed !== undefined && samePerson(asked, confirmed)) {
    out.push(t(' · asked and confirmed by '), person(confirmed));
  } else {
    if (asked !== undefined) out.push(t(' · asked by '), person(asked));
    if (confirmed !== undefined)
      out.push(t(out.length === 0 ? ' · confirmed by ' : ', confirmed by '), person(confirmed));
  }
  if (approved !== undefined)
    out.push(t(out.length === 0 ? ' · approved by ' : ', approved by '), person(approved));
  return out;
}

/**
 * The title of the alert a request was suggested after: the entry's `alert`, or in older entries
 * Flow's words (`suggested after alert "…" (source)`).
 */
function alertOf(p: Parts): string | undefined {
  if (p.request?.alert !== undefined) return p.request.alert.title;
  return /^suggested after alert "(.*)" \([\w-]+\)(?:;|$)/s.exec(p.request?.message ?? '')?.[1];
}

function alertSpans(p: Parts): Span[] {
  const title = alertOf(p);
  if (title === undefined) return [];
  // The title only, and short: a Discord list field holds about 1000 characters for all its lines,
  // and five switches of two people with Discord mentions, after an alert, must fit.
  return [t(` · alert "${truncate(oneLine(title), ALERT_TITLE_MAX)}"`)];
}

/** "rollback dep_x → dep_y", "resume automatic deploys on dep_x": what the request moves, from where. */
function whatSpans(e: AuditEntryLike, withFrom = true): Span[] {
  if (e.action === undefined || e.targetId === undefined) return [b(e.event)];
  if (e.action === 'promote' && e.fromId !== undefined && e.fromId === e.targetId)
    return [t('resume automatic deploys on '), c(e.targetId)];
  if (e.fromId === undefined || !withFrom) return [t(`${e.action} to `), c(e.targetId)];
  return [t(`${e.action} `), c(e.fromId), t(' → '), c(e.targetId)];
}

/** The entry that says what a request moves (any of them carries action, target and from). */
function subject(r: Request, p: Parts): AuditEntryLike {
  return r.entries.find((e) => e.action !== undefined && e.targetId !== undefined) ?? p.last;
}

/** `s` on one line (a list item is one line): any run of whitespace as one space. */
function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function lower(s: string): string {
  return s.length === 0 ? s : `${(s[0] as string).toLowerCase()}${s.slice(1)}`;
}

function switchLine(r: Request, p: Parts, refusalTitle: (code: string) => string): Line {
  let outcome: Span[];
  let state: ListItem['state'];
  const end = p.end;
  const code = end?.code === undefined ? '' : ` (${end.code})`;
  if (end?.event === 'succeeded') {
    outcome = [b('succeeded')];
    state = 'ok';
  } else if (end?.event === 'failed') {
    outcome = [b('failed'), t(code)];
    state = 'bad';
  } else if (end !== undefined) {
    // The worker refused it before asking the platform anything (out of date when its turn came, or
    // no longer permitted): nothing moved.
    outcome = [b('not run'), t(end.code === undefined ? '' : `: ${lower(refusalTitle(end.code))}${code}`)];
  } else if (p.started !== undefined) {
    outcome = [b('running')];
  } else {
    outcome = [b('queued')];
  }
  return {
    at: p.last.at,
    item: {
      spans: [
        t(`${formatTime(p.last.at)} · `),
        ...whatSpans(subject(r, p)),
        t(' · '),
        ...outcome,
        ...peopleSpans(peopleOf(p, true), true),
        ...alertSpans(p),
      ],
      ...(state === undefined ? {} : { state }),
    },
  };
}

/** What became of a request that did not switch: "expired: nobody confirmed it", "cancelled by B"… */
function otherOutcome(r: Request, p: Parts, refusalTitle: (code: string) => string): Span[] {
  const closed = p.closed;
  if (closed?.event === 'cancelled' && closed.code === EXPIRED) {
    // Nobody cancelled it: time ran out. What it was waiting for is what its entries say.
    if (p.approval !== undefined && p.approvalUndone) return [b('expired'), t(' after its queueing failed')];
    if (p.approval !== undefined) return [b('expired'), t(' before it was queued')];
    if (p.confirmation !== undefined) return [b('expired'), t(' waiting for approval')];
    if (p.request !== undefined) return [b('expired'), t(': nobody confirmed it')];
    return [b('expired')];
  }
  if (closed?.event === 'cancelled') {
    const dismissed = /\bdismissed the (rollback|promote)\b/.test(closed.message ?? '');
    return [
      b(dismissed ? 'dismissed' : 'cancelled'),
      ...(closed.actor === undefined ? [] : [t(' by '), person(closed.actor)]),
    ];
  }
  if (closed !== undefined) {
    // A click found the plan out of date (what was planned from changed): nothing moved. What changed
    // is said by its headline unless it is the plain "plan out of date" (traffic moved since).
    const why =
      closed.code === undefined || closed.code === PLAN_STALE
        ? ''
        : `: ${lower(refusalTitle(closed.code))} (${closed.code})`;
    return [
      b('out of date'),
      ...(closed.actor === undefined ? [] : [t(' when '), person(closed.actor), t(' clicked')]),
      t(`${why}, nothing changed`),
    ];
  }
  if (r.superseded) return [b('replaced'), t(' by a later request for the same switch')];
  if (p.approval !== undefined && p.approvalUndone)
    return [b('not queued'), t(` (${ENQUEUE_FAILED}): open again`)];
  if (p.confirmation !== undefined) return [b('waiting for approval')];
  if (p.request !== undefined) return [b('waiting for confirmation')];
  return [b(p.last.event)];
}

/** `people` without the asker when the line already names them as who closed it ("cancelled by B"). */
function withoutCloser(people: People, closed: AuditEntryLike | undefined): People {
  if (closed?.event !== 'cancelled' || !samePerson(people.asked, closed.actor)) return people;
  const { asked: _, ...rest } = people;
  return rest;
}

function otherLine(r: Request, p: Parts, refusalTitle: (code: string) => string): Line {
  const what = subject(r, p);
  const when = t(`${formatTime(p.last.at)} · `);
  if (what.action === undefined || what.targetId === undefined) {
    // An entry of no switch this version knows (another version's, say): its event and who it names.
    const e = p.last;
    return {
      at: e.at,
      item: {
        spans: [
          when,
          b(e.event),
          ...(e.actor === undefined ? [] : [t(' by '), person(e.actor)]),
          ...(e.targetId === undefined ? [] : [t(' → '), c(e.targetId)]),
        ],
      },
    };
  }
  return {
    at: p.last.at,
    item: {
      spans: [
        when,
        ...whatSpans(what),
        t(' · '),
        ...otherOutcome(r, p, refusalTitle),
        ...peopleSpans(
          withoutCloser(peopleOf(p, p.approval !== undefined && !p.approvalUndone), p.closed),
          false,
        ),
        ...alertSpans(p),
      ],
    },
  };
}

/** A Switchyard switch that a live history move may be: its action, target, starts and end. */
interface Run {
  readonly action: PlanAction;
  readonly targetId: string;
  /** When its `started` entries were written (see `Clocks`). */
  readonly starts: readonly number[];
  /**
   * Its start was not read (older than the history read), only its end: it started at or before this
   * time, the oldest entry read.
   */
  readonly startedBy?: number;
  readonly end?: AuditEntryLike;
  claimed: boolean;
}

/** The times moves and entries are compared on: both on Redis's clock, or as their writers stamped them. */
interface Clocks {
  /** When an entry was written. */
  readonly written: (e: AuditEntryLike) => number;
  /** When a move of the live history was made, on the entries' clock. */
  readonly moved: (move: LiveEntry) => number;
}

function clocksOf(redisAheadMs: number | undefined): Clocks {
  if (redisAheadMs === undefined) return { written: (e) => e.at, moved: (move) => move.since };
  return {
    // (An entry the audit gave no time for: its writer's clock taken as this process's.)
    written: (e) => e.writtenAt ?? e.at + redisAheadMs,
    moved: (move) => move.since + redisAheadMs,
  };
}

/**
 * The runs of the switches read. With a read cut short (`oldest`: its oldest entry's time), a request
 * of which only the end was read (the read stopped between its start and its end) is a run too,
 * started by `oldest`: else the move it made, inside the span the read covers, would be judged with
 * nothing to explain it.
 */
function runsOf(requests: readonly Request[], clocks: Clocks, oldest: number | undefined): Run[] {
  const runs: Run[] = [];
  for (const r of requests) {
    const started = r.entries.filter((e) => e.event === 'started');
    const end = partsOf(r).end;
    // (A request's entries before its start, the request and the approval, were written before it:
    // an end that is the first entry of its request read had its start, if any, before the read.)
    const endOnly = oldest !== undefined && end !== undefined && r.entries[0] === end;
    const first = started[0] ?? (endOnly ? end : undefined);
    if (first?.action === undefined || first.targetId === undefined) continue;
    runs.push({
      action: first.action,
      targetId: first.targetId,
      starts: started.map(clocks.written),
      ...(started.length === 0 && endOnly ? { startedBy: oldest } : {}),
      ...(end === undefined ? {} : { end }),
      claimed: false,
    });
  }
  return runs;
}

/**
 * The moves of the platform's live history that Switchyard did not make, as lines: a rollback or
 * promote is Switchyard's when one of its switches to that target, with the same action, started
 * within the hour before it (or a minute after: see `CLOCK_SKEW_MS`) and did not end refused (it
 * never asked the platform) nor failed before it; each switch explains one move, the nearest. A move
 * to the target of a switch that had failed before it is the platform completing what Switchyard
 * reported failed (or someone doing it by hand): said so. An automatic deploy is the platform's.
 * Moves are compared on `clocks`, and shown at the platform's time.
 */
function liveLines(
  liveHistory: readonly LiveEntry[],
  runs: readonly Run[],
  clocks: Clocks,
  judgeFrom: number | undefined,
): Line[] {
  const lines: Line[] = [];
  liveHistory.forEach((move, k) => {
    const from = liveHistory[k - 1]?.deploymentId;
    const at = clocks.moved(move);
    // Older than the history read: whether Switchyard made it cannot be told.
    if (judgeFrom !== undefined && at < judgeFrom) return;
    const when = `${formatTime(move.since)} · `;
    if (move.via === 'deploy') {
      lines.push({
        at: move.since,
        deploy: move.deploymentId,
        item: { spans: [t(when), c(move.deploymentId), t(' went live · automatic deploy by the platform')] },
      });
      return;
    }
    // (A run whose start was not read started by `startedBy`, at any time before: it may have
    // started within the hour before the move unless `startedBy` is older, and as near as just before.)
    const candidates = runs.filter(
      (run) =>
        !run.claimed &&
        run.action === move.via &&
        run.targetId === move.deploymentId &&
        run.end?.event !== 'refused' &&
        (run.starts.some((s) => s >= at - EXPLAIN_WINDOW_MS && s <= at + CLOCK_SKEW_MS) ||
          (run.startedBy !== undefined && run.startedBy >= at - EXPLAIN_WINDOW_MS)),
    );
    const distance = (run: Run) =>
      Math.min(
        ...run.starts.map((s) => (s <= at ? at - s : EXPLAIN_WINDOW_MS + s - at)),
        ...(run.startedBy === undefined ? [] : [Math.max(0, at - run.startedBy)]),
      );
    const endAt = (run: Run) => (run.end === undefined ? Number.NaN : clocks.written(run.end));
    const failedBefore = (run: Run) => run.end?.event === 'failed' && endAt(run) + CLOCK_SKEW_MS < at;
    const own = candidates.filter((run) => !failedBefore(run)).sort((a, z) => distance(a) - distance(z))[0];
    if (own !== undefined) {
      own.claimed = true;
      return;
    }
    const late = candidates.filter(failedBefore).sort((a, z) => endAt(z) - endAt(a))[0];
    if (late !== undefined) late.claimed = true;
    const by =
      move.by === undefined
        ? [t(' (the platform does not say by whom)')]
        : [t(`, by ${oneLine(move.by)} (as the platform records it)`)];
    lines.push({
      at: move.since,
      item: {
        spans: [
          t(when),
          ...(from === undefined
            ? [t(`${move.via} to `), c(move.deploymentId)]
            : [t(`${move.via} `), c(from), t(' → '), c(move.deploymentId)]),
          t(' · '),
          late === undefined
            ? b('outside Switchyard')
            : b(`on the platform after Switchyard's ${move.via} to it failed`),
          ...by,
        ],
      },
    });
  });
  return lines;
}

/** Consecutive automatic deploys (no other line between them) as one line. */
function joinDeploys(lines: readonly Line[]): ListItem[] {
  const out: ListItem[] = [];
  for (let k = 0; k < lines.length; ) {
    const line = lines[k] as Line;
    let end = k + 1;
    while (end < lines.length && lines[end]?.deploy !== undefined && line.deploy !== undefined) end++;
    const run = lines.slice(k, end);
    if (run.length < 2) out.push(line.item);
    else {
      // Newest first in the list: the run reads oldest to newest.
      const ordered = [...run].reverse();
      const oldest = ordered[0] as Line;
      const ids = ordered.map((l) => l.deploy ?? '');
      const shown =
        ids.length <= DEPLOY_IDS_SHOWN
          ? ids.map((id) => [c(id)])
          : [[c(ids[0] ?? '')], [t(`… ${ids.length - 2} more …`)], [c(ids[ids.length - 1] ?? '')]];
      out.push({
        spans: [
          t(`${formatTime(oldest.at)} to ${formatTime(line.at)} · `),
          ...shown.flatMap((s, n) => (n === 0 ? s : [t(' → '), ...s])),
          t(` went live in turn · ${run.length} automatic deploys by the platform`),
        ],
      });
    }
    k = end;
  }
  return out;
}

/**
 * The switch lines (with the moves outside Switchyard) and the other requests' lines, newest first.
 * Lines are placed by the times they show: an entry's (its writer's clock) and a move's (the
 * platform's); moves are matched to switches on one clock (see `Clocks`).
 */
export function historyLists(input: HistoryInput): HistoryLists {
  const requests = requestsOf(input.audit);
  const switches: Line[] = [];
  const others: Line[] = [];
  for (const r of requests) {
    const p = partsOf(r);
    // (An entry of no switch this version knows, without action and target, is listed as it is.)
    const known = r.entries.some((e) => e.action !== undefined && e.targetId !== undefined);
    if (known && isSwitch(p)) switches.push(switchLine(r, p, input.refusalTitle));
    else others.push(otherLine(r, p, input.refusalTitle));
  }
  const clocks = clocksOf(input.redisAheadMs);
  // The history read reaches back to its oldest entry (all of it when it was read whole).
  const oldest = input.auditTruncated
    ? input.audit.reduce<number | undefined>((m, e) => {
        const at = clocks.written(e);
        return m === undefined || at < m ? at : m;
      }, undefined)
    : undefined;
  const judgeFrom = input.auditTruncated ? (oldest ?? Number.POSITIVE_INFINITY) - CLOCK_SKEW_MS : undefined;
  const moves = liveLines(input.liveHistory, runsOf(requests, clocks, oldest), clocks, judgeFrom);
  const byTime = (a: Line, z: Line) => z.at - a.at;
  return {
    switches: joinDeploys([...switches, ...moves].sort(byTime)),
    others: others.sort(byTime).map((l) => l.item),
  };
}

/** A refused click, briefly: on what, whose click, and why in a few words (the code for the rest). */
export function refusedClickItem(e: AuditEntryLike, refusalTitle: (code: string) => string): ListItem {
  return {
    spans: [
      t(`${formatTime(e.at)} · `),
      ...whatSpans(e, false),
      t(' · refused a click by '),
      person(e.actor),
      ...(e.code === undefined ? [] : [t(`: ${lower(refusalTitle(e.code))} (${e.code})`)]),
    ],
  };
}
