/**
 * The switch processor: what one attempt of a rollback/promote job does. Under the environment lock
 * it judges the people the job names by the configuration in force in its process, which may have
 * changed since the click (`queuedSwitchRefusal`: a job they may no longer have made is refused before
 * the platform is asked anything), re-reads the platform, re-validates the plan (stale plans are
 * refused, a switch already done — e.g. by this job before its worker was killed — is not
 * repeated), starts the switch (or resumes
 * following the operation a previous attempt started), follows the platform's operation and verifies
 * that every affected domain is answered by the target (stopping at once when another switch moved the
 * environment on meanwhile: `verifyTraffic`). Every step is published as BullMQ job
 * progress and sent to the Reporter; a run that resumes a job (after a stall, a hand-back or a failed
 * attempt) keeps the steps earlier runs published, one entry per step (`Tracker.resume`). Retryable faults are rethrown for BullMQ's backoff; everything
 * else ends the job through UnrecoverableError with the code and a message saying where traffic is.
 *
 * An attempt owns the environment lock under its own name (`<jobId>:<attemptId>`) and renews it with
 * its BullMQ job lock. Once it lost either (renewal says so, BullMQ reports `lockRenewalFailed`, or no
 * renewal was confirmed for a whole lock duration), it stops at its next step: it never calls
 * rollback/promote (the fence re-checks both locks right before that call), and when the job may have
 * been handed to another attempt it publishes, audits and counts nothing (unless the job itself is gone
 * from Redis: then nobody else can end it, and this attempt does, `endOrphaned`). A job that stalled
 * more than `MAX_STALLS` times ends as failed with a message saying its outcome is unknown and where
 * traffic is; one whose data the schema refuses ends as failed without running (`endUnreadable`).
 */
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { DelayedError, type Job, UnrecoverableError, WaitingError } from 'bullmq';
import { z } from 'zod';
import { AUDIT_MESSAGE_MAX, type AuditEntry, type AuditLog, clipMessage } from '../src/audit.js';
import { type Clock, monotonicNow, within } from '../src/clock.js';
import { checkFresh, isAlreadyDone, type PlanExpectation } from '../src/domain/plan.js';
import { RefusalCode } from '../src/domain/result.js';
import type { EnvironmentSnapshot, LiveEntry } from '../src/domain/types.js';
import {
  asSwitchyardError,
  PlatformHttpError,
  RefusalError,
  type SwitchyardError,
  SwitchyardError as SyError,
} from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { Metrics } from '../src/metrics.js';
import { type PermissionContext, queuedSwitchRefusal } from '../src/permissions.js';
import type { DeployPlatform, OperationRef, OperationStatus } from '../src/platform/port.js';
import {
  type Actor,
  type MessageRef,
  type Outcome,
  type Progress,
  platformStep,
  progressSchema,
  type Reporter,
  type StepFailure,
  StepName,
  type StepRecord,
  type Traffic,
} from '../src/progress.js';
import type { EnvironmentLock, JobLock, SwitchKeys } from '../src/queue.js';
import {
  jobDataIssues,
  jobIdForPlan,
  lockOwner,
  messageRefKey,
  queuedProgress,
  readableJobData,
  type SwitchJobData,
  switchJobSchema,
  withAttached,
} from '../src/queue.js';
import { isRetryReservation, ownerJobId, type PreviousRun, retryReservation } from '../src/queue-keys.js';
import type { RedisClient } from '../src/redis.js';

/** Why a job's signal was aborted by Switchyard itself (graceful shutdown hands the job back). */
export const SHUTDOWN_REASON = 'switchyard-shutdown';

/**
 * How many times a job may stall (its worker stopped renewing its lock: crash, freeze, lost Redis) and
 * still be resumed; the next delivery ends it as failed, outcome unknown (`endAfterStalls`). BullMQ's own
 * `maxStalledCount` is set far above it, so that this end is always published, audited and counted.
 */
export const MAX_STALLS = 3;

/** How long a job's operation ref (or started-switch marker) is kept. */
const OPERATION_TTL_MS = 7 * 86_400_000;

/** Everything one processor attempt needs (built once per worker by jobs/switch-worker.ts). */
export interface ProcessorDeps {
  readonly platform: DeployPlatform;
  readonly reporter: Reporter;
  readonly clock: Clock;
  readonly verify: { readonly timeoutMs: number; readonly intervalMs: number };
  /** Longest time to follow a platform operation before giving up (retryable). */
  readonly operationTimeoutMs: number;
  /** Delay before a job waiting for its environment looks again (it is also woken on release). */
  readonly lockRetryMs: number;
  readonly lock: EnvironmentLock;
  readonly keys: SwitchKeys;
  readonly redis: RedisClient;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly audit?: AuditLog;
  /**
   * Wakes jobs waiting for `environment` (promotes those parked to wait for its lock; never one delayed
   * for a retry's backoff).
   */
  readonly wake: (environment: string, jobIds: readonly string[]) => Promise<void>;
  /** Work a switch leaves running after its job ends (the worker waits for it when closing). */
  readonly background: (work: Promise<unknown>) => void;
  /**
   * The longest backoff BullMQ may give `job` before its next attempt, its current attempt having
   * failed with `err` (the worker's backoff strategy with its jitter at the top): how long an attempt
   * that leaves a switch of unknown outcome keeps the environment for its retry, beyond the lock TTL.
   */
  readonly maxRetryDelayMs: (job: Job, err: unknown) => number;
  /**
   * Registers `check` to run when BullMQ reports that it could not renew the lock of job `jobId`
   * (`lockRenewalFailed`); returns the function that unregisters it.
   */
  readonly watchJobLock?: (jobId: string, check: () => void) => () => void;
  /**
   * The configuration in force in this worker's process (the environments' allow lists and two-person
   * rule, the platform): when a job's turn comes, the people it names are judged again by it
   * (`queuedSwitchRefusal`), since it may have changed since the click. Both processes that run
   * workers pass theirs (handlers/app.ts, jobs/worker-main.ts); without it (tests, the benchmark),
   * jobs are not judged again.
   */
  readonly permissions?: PermissionContext;
}

const operationRefSchema = z.object({
  id: z.string(),
  action: z.enum(['rollback', 'promote']),
  environment: z.string(),
  targetId: z.string(),
  startedAt: z.number(),
  // The switch's source (OperationRef.fromId): kept, so a resumed job still tells an overtaken switch.
  fromId: z.string().exactOptional(),
  // Set when an earlier request of this job got no usable answer (only its started marker was stored)
  // before this operation's request was sent: that earlier request may have switched, and this
  // operation failing does not undo it (`StoredOperation.unanswered`). Absent in refs stored before it.
  askedBefore: z.literal(true).exactOptional(),
  // With `askedBefore`: that earlier request's `liveSince` (see startedMarkerSchema).
  liveSince: z.number().exactOptional(),
});

/**
 * What an attempt writes to the job's operation key right before it calls rollback/promote (under the
 * fence): "this job asked the platform to switch; the outcome is not known yet". Replaced by the
 * operation ref once the platform answers; removed again when the platform definitely refused.
 */
const startedMarkerSchema = z.object({
  started: z.string(),
  at: z.number(),
  // When the deployment live as this job first asked went live, by the platform's live history (its
  // `since`, platform time; absent without a live history or in markers written before it): this job's
  // own switch can only be a later entry (`historyBound`).
  liveSince: z.number().exactOptional(),
});

/** A non-retryable end of a switch job: BullMQ's UnrecoverableError carrying Switchyard's code. */
export class SwitchFailedError extends UnrecoverableError {
  readonly code: string;
  readonly outcome: Outcome;
  constructor(code: string, message: string, outcome: Outcome) {
    super(`${code}: ${message}`);
    this.code = code;
    this.outcome = outcome;
  }
}

const refusalCodes = new Set<string>(Object.values(RefusalCode));
/** Refusals by the platform of Switchyard's own credentials or account (an operator must act). */
const platformRefusalCodes = new Set<string>([
  RefusalCode.platformUnauthorized,
  RefusalCode.platformForbidden,
  RefusalCode.platformPrecondition,
]);

/**
 * Whether BullMQ should retry after `err` (platform 5xx, timeouts — a 408 from the platform included,
 * whatever client made it — and "operation in progress").
 */
export function isRetryable(err: SwitchyardError): boolean {
  return (
    err.retry ||
    err.code === RefusalCode.operationInProgress ||
    (err instanceof PlatformHttpError && err.status === 408)
  );
}

/**
 * What a graceful shutdown that ran out of time shows on the step it interrupted: the job is handed
 * back to the queue (no attempt used), and another worker resumes it.
 */
export const HANDED_BACK_DETAIL =
  'Worker shutting down: handed back to the queue; another worker resumes it from here.';

/**
 * What a run that resumes a job shows on the step an earlier run was on when its worker stopped
 * answering (a crash, a freeze, a lost Redis connection; or an attempt that stopped silently on a lost
 * lock). The step keeps its earlier start and runs on until the resuming run knows what became of it
 * (`Tracker.resume`): the platform may have gone on with it meanwhile.
 */
export const RESUMED_AFTER_STALL_DETAIL =
  'Interrupted: the worker running this step stopped answering; a later run resumed the switch from here.';

/** The same, for a step a worker shutting down handed back to the queue (`HANDED_BACK_DETAIL`). */
export const RESUMED_AFTER_HAND_BACK_DETAIL =
  'Interrupted: a worker shutting down handed the switch back to the queue; a later run resumed it from here.';

/**
 * The message of a run's `started` audit entry: none for a job's first run, the attempt for the first
 * run of a retry, and for a run that resumes the same attempt (the job was handed back by a worker
 * shutting down, or its worker stopped answering) why it runs again and which run this is, so that no
 * two `started` entries of one job read the same.
 */
export function startedMessage(
  attempt: number,
  stalls: number,
  previous: { readonly runs: number; readonly attempt: number; readonly stalls: number },
): string | undefined {
  const run = previous.runs + 1;
  if (previous.runs === 0 || attempt > previous.attempt)
    return attempt > 1 ? `attempt ${attempt}` : undefined;
  if (attempt < previous.attempt) return `attempt ${attempt}, run ${run}: started over`;
  const why =
    stalls > previous.stalls
      ? 'after the worker running it stopped answering'
      : 'after a worker shutting down handed it back';
  return `resumed ${why} (attempt ${attempt}, run ${run})`;
}

/** The job outcome a terminal error maps to. */
export function outcomeOf(err: SwitchyardError): Outcome {
  if (err.code === RefusalCode.planStale) return 'stale';
  if (refusalCodes.has(err.code)) return 'refused';
  return 'failed';
}

/** Builds and publishes the job's Progress (the whole state each time: renders are idempotent). */
class Tracker {
  progress: Progress;
  /** Settles when every BullMQ progress write so far has. */
  private written: Promise<void> = Promise.resolve();
  /** Settles when every report so far has. */
  private reported: Promise<void> = Promise.resolve();
  /** States published this tick, not yet sent. */
  private pending: Progress[] = [];
  private flushing: Promise<void> | undefined;
  private seq = 0;
  private landedSeq = 0;
  private newest: Progress;
  /** The job's chat messages as last read, and when (clock ms). */
  private refs: MessageRef[];
  private refsReadAt: number;
  /** Set once the attempt may no longer speak for the job (it lost its job lock): nothing goes out. */
  private silent = false;
  /**
   * The steps an earlier run was on when it stopped (`resume`), running until this run knows what
   * became of them: none of them is this run's running step.
   */
  private interrupted = new Set<StepName>();
  /**
   * The `reactivating`/`switching` steps an earlier attempt of this job ended failed only because it
   * could not go on following the platform's operation (a retryable fault: the platform not reached, a
   * time-out, a lost lock; `resume`), while the platform may well have gone on with it. Once this run
   * follows that same operation (`followsEarlierOperation`), they end done when it finds the platform
   * past them, or go on when it finds the platform still on them. One whose request got no answer
   * (no operation stored) ends done when this run finds the switch done (`earlierRequestLanded`).
   */
  private lostTrack = new Set<StepName>();
  /** This run follows the operation an earlier attempt started, which the platform has not failed. */
  private followingEarlier = false;
  /**
   * The `validating` step as earlier runs published it, done (`resume`): what is published instead of
   * this run's own while it validates and a step an earlier run was on still runs (`published`).
   */
  private earlierValidating: StepRecord | undefined;
  constructor(
    private readonly job: Job,
    private readonly deps: ProcessorDeps,
    base: Progress,
    private readonly own: readonly MessageRef[],
  ) {
    this.progress = base;
    this.newest = base;
    this.refs = [...own];
    this.refsReadAt = Number.NEGATIVE_INFINITY;
  }

  /**
   * Publishes nothing from now on, not even states already waiting for their tick: the job may belong
   * to another attempt now, whose states must not be overwritten by this one's.
   */
  silence(): void {
    this.silent = true;
    this.pending = [];
  }

  /** Speaks again: the job is confirmed to be this attempt's after all (see `stillOwnsJob`). */
  unsilence(): void {
    this.silent = false;
  }

  /** The job's attached message refs as read under the lock (saves a read on the first publish). */
  attached(members: readonly string[]): void {
    this.refs = withAttached(this.own, members);
    this.refsReadAt = this.now();
  }

  /** The refs among `members` (attached refs read again) that this job has not reported to yet. */
  lateRefs(members: readonly string[]): MessageRef[] {
    const known = new Set(this.refs.map(messageRefKey));
    return withAttached(this.own, members).filter((r) => !known.has(messageRefKey(r)));
  }

  private now(): number {
    return this.deps.clock.now();
  }

  /** This run's running step (not one an earlier run was on, `resume`). */
  running(): StepRecord | undefined {
    return this.progress.steps.find((s) => s.state === 'running' && !this.interrupted.has(s.step));
  }

  has(step: StepName): boolean {
    return this.progress.steps.some((s) => s.step === step);
  }

  /**
   * Whether `step` is one an earlier run was on when it stopped, still running (`resume`), or one an
   * earlier attempt lost track of while this run follows the same operation (`lostTrack`).
   */
  wasOn(step: StepName): boolean {
    return this.interrupted.has(step) || (this.followingEarlier && this.lostTrack.has(step));
  }

  /**
   * This run follows the operation an earlier attempt of the job started, the platform reporting it
   * under way or succeeded (not failed): a step an earlier attempt lost track of (`lostTrack`) is that
   * operation's, and ends as the platform took it.
   */
  followsEarlierOperation(): void {
    this.followingEarlier = true;
  }

  /**
   * Takes over the steps earlier runs of this job published (`earlierSteps`): what they did stays as
   * it happened. A step one of them was on when it stopped stays running, from its earlier start,
   * saying so (`detail`: a stall or a hand-back): the platform may well have gone on with it. It ends
   * once this run knows more (`closeInterrupted`, `interruptedFailed`, `end`), or goes on when this
   * run takes it up again (`start`). A `reactivating` or `switching` step the platform was never asked
   * for (`asked` false: no operation or started marker is stored) did nothing, and is left out: this
   * run does it again, or never reaches it. A running `validating` step is replaced by this run's own.
   * A `reactivating` or `switching` step an earlier attempt failed with a fault that is retried, after
   * asking the platform, is one it may have lost track of (`lostTrack`): it ends done if this run finds
   * the platform past it in the same operation.
   */
  resume(earlier: readonly StepRecord[], detail: string, asked: boolean): void {
    const queued = this.progress.steps[0];
    const steps: StepRecord[] = [];
    for (const s of earlier) {
      if (s.state !== 'running' || s.step === 'validating') {
        steps.push({ ...s });
        // Failed by a fault that is retried (`retryingDetail`): the platform may have gone on.
        if (asked && s.state === 'failed' && platformStep(s.step) && RETRYING_SUFFIX.test(s.detail ?? ''))
          this.lostTrack.add(s.step);
      } else if (s.step === 'queued') {
        // Never written with later steps: kept as this run's own `queued` would be.
        if (queued !== undefined) steps.push(queued);
      } else if (asked || (s.step !== 'reactivating' && s.step !== 'switching')) {
        steps.push({ step: s.step, state: 'running', startedAt: s.startedAt, detail });
        this.interrupted.add(s.step);
      }
    }
    if (steps[0]?.step !== 'queued' && queued !== undefined) steps.unshift(queued);
    this.progress.steps = steps;
    const validating = earlier.find((s) => s.step === 'validating');
    if (validating?.state === 'done') this.earlierValidating = { ...validating };
  }

  /**
   * The state as published: `progress`, except while this run validates and a step an earlier run
   * was on still runs (`resume`). Every step list shows one running step at a time, and that one is
   * the resumed step, whose detail already says a later run took it over: this run's validation is
   * what checks on it, so `validating` reads as the earlier runs left it (done), or is left out if
   * they left it otherwise. Once validation ends, this run's own record of it is published.
   */
  private published(): Progress {
    const state = structuredClone(this.progress);
    if (this.running()?.step !== 'validating' || this.interrupted.size === 0) return state;
    const at = state.steps.findIndex((s) => s.step === 'validating');
    if (this.earlierValidating === undefined) state.steps.splice(at, 1);
    else state.steps[at] = { ...this.earlierValidating };
    return state;
  }

  /**
   * Ends, as `state`, the steps an earlier run was on (`resume`) that come before `step`: this run is
   * past them (all of them without `step`).
   */
  private closeInterrupted(state: StepRecord['state'], step?: StepName): void {
    const before = step === undefined ? STEP_ORDER.length : STEP_ORDER.indexOf(step);
    for (const s of this.progress.steps) {
      if (!this.interrupted.has(s.step) || STEP_ORDER.indexOf(s.step) >= before) continue;
      s.state = state;
      s.endedAt = this.now();
      this.interrupted.delete(s.step);
    }
  }

  /**
   * Ends done the steps an earlier attempt lost track of (`lostTrack`) that come before `step` (and
   * `step` itself with `including`): this run follows their operation, and the platform is past them.
   * Each keeps what made that attempt fail, and says the platform finished it.
   */
  private closeLostTrack(step: StepName, including = false): void {
    if (!this.followingEarlier) return;
    const before = STEP_ORDER.indexOf(step) + (including ? 1 : 0);
    for (const s of this.progress.steps) {
      if (!this.lostTrack.has(s.step) || STEP_ORDER.indexOf(s.step) >= before) continue;
      s.state = 'done';
      s.endedAt = this.now();
      s.detail = lostTrackDetail(s.detail ?? '', ' could not follow it; the platform finished it');
      delete s.failure;
      this.lostTrack.delete(s.step);
    }
  }

  /**
   * The switch an earlier attempt of this job asked for is found done, though no operation of it is
   * stored: that attempt's request got no answer it could use (a time-out, a 5xx, the platform not
   * reached), yet the platform switched. A step that attempt failed for that reason (`lostTrack`,
   * `unansweredRequest`) was the platform's, and ends done, saying so; one the platform refused, or
   * that failed for another reason, stays failed.
   */
  earlierRequestLanded(action: SwitchJobData['action']): void {
    for (const s of this.progress.steps) {
      if (!this.lostTrack.has(s.step) || !unansweredRequest(s, action)) continue;
      s.state = 'done';
      s.endedAt = this.now();
      s.detail = lostTrackDetail(s.detail ?? '', ': the request failed, but the platform did it');
      delete s.failure;
      this.lostTrack.delete(s.step);
    }
  }

  /**
   * Takes up `step` again when an earlier attempt lost track of it (`lostTrack`) and this run finds
   * the platform still on it: it goes on from its earlier start, saying so. False when it is not one.
   */
  private takeUp(step: StepName): boolean {
    if (!this.followingEarlier || !this.lostTrack.delete(step)) return false;
    const s = this.progress.steps.find((r) => r.step === step);
    if (s === undefined) return false;
    s.state = 'running';
    delete s.endedAt;
    delete s.failure;
    s.detail = lostTrackDetail(s.detail ?? '', ' could not follow it; a later attempt took it up');
    return true;
  }

  /**
   * The platform reports that the operation an earlier run started failed (or does not know it): the
   * steps an earlier run was on end failed, saying so; one this run does again is a new request.
   */
  interruptedFailed(detail: string): void {
    for (const s of this.progress.steps) if (this.interrupted.has(s.step)) s.detail = detail;
    this.closeInterrupted('failed');
  }

  /**
   * Starts `step`, ending the running one as done, and the steps an earlier run was on before it
   * (`closeInterrupted`). A step earlier runs published stays one entry (the published state stays
   * bounded however often the job is resumed or retried): done again by this run, it is timed from
   * this run's start; the one an earlier run was on goes on from its earlier start, still saying so.
   */
  start(step: StepName, detail?: string): void {
    this.endRunning('done');
    this.closeInterrupted('done', step);
    this.closeLostTrack(step);
    if (this.interrupted.delete(step) || this.takeUp(step)) return;
    // Done again by this run (a new request): replaced, whatever an earlier attempt left.
    this.lostTrack.delete(step);
    this.put({ step, state: 'running', startedAt: this.now(), ...(detail === undefined ? {} : { detail }) });
  }

  /**
   * Says on the running step that the job is handed back (`HANDED_BACK_DETAIL`); while this run
   * validates, on the step an earlier run was on too, since that is the one published running
   * (`published`).
   */
  handedBack(): void {
    const cur = this.running();
    if (cur === undefined) return;
    cur.detail = HANDED_BACK_DETAIL;
    if (cur.step !== 'validating') return;
    for (const s of this.progress.steps) if (this.interrupted.has(s.step)) s.detail = HANDED_BACK_DETAIL;
  }

  /** Sets the record of `record.step`, in its place among the steps (one per step, in their order). */
  private put(record: StepRecord): void {
    const steps = this.progress.steps;
    const at = steps.findIndex((s) => s.step === record.step);
    if (at >= 0) {
      steps[at] = record;
      return;
    }
    const order = STEP_ORDER.indexOf(record.step);
    const after = steps.findIndex((s) => STEP_ORDER.indexOf(s.step) > order);
    if (after >= 0) steps.splice(after, 0, record);
    else steps.push(record);
  }

  /** Ends the running step with `state` (a `reactivating`/`switching` one that fails, with `failure`). */
  endRunning(state: StepRecord['state'], detail?: string, failure?: StepFailure): void {
    const cur = this.running();
    if (!cur) return;
    cur.state = state;
    cur.endedAt = this.now();
    if (detail !== undefined) cur.detail = detail;
    if (failure !== undefined && platformStep(cur.step)) cur.failure = failure;
  }

  /**
   * Ends the job: the running step fails with `detail`, a step an earlier run was on fails too (what
   * became of it is not known: the message says where traffic is), and so does any other left running
   * in a state taken over whole (`endAfterStalls`: the last run may have published its own and one an
   * earlier run was on); the state gets its `outcome`, `code` and `message`, and is published (a
   * failure to publish is ignored: the end goes on).
   */
  end(outcome: Outcome, code: string, message: string, detail: string): Promise<void> {
    this.endRunning('failed', detail);
    this.closeInterrupted('failed');
    for (const s of this.progress.steps)
      if (s.state === 'running') {
        s.state = 'failed';
        s.endedAt = this.now();
      }
    this.progress.outcome = outcome;
    this.progress.code = code;
    this.progress.message = message;
    return this.publish().catch(() => undefined);
  }

  /**
   * Records a step that did not need to run (e.g. the switch of a job recovered after it). One an
   * earlier run of the job did is done: it stays so (one it was on ends done now, and so does one an
   * earlier attempt lost track of while following the operation this run found done: `lostTrack`).
   */
  skip(step: StepName, detail: string): void {
    this.endRunning('done');
    this.closeInterrupted('done', step);
    // One an earlier attempt lost track of is done too (the platform finished it), saying so.
    this.closeLostTrack(step, true);
    const earlier = this.progress.steps.find((s) => s.step === step);
    if (earlier !== undefined && this.interrupted.delete(step)) {
      // The step an earlier run was on: the platform finished it since.
      earlier.state = 'done';
      earlier.endedAt = this.now();
      return;
    }
    if (earlier?.state === 'done') return;
    const now = this.now();
    this.put({ step, state: 'skipped', startedAt: now, endedAt: now, detail });
  }

  /**
   * Once the job has an outcome, its steps promise no retry: a step an earlier attempt failed, carried
   * by the later ones (`resume`), says it was retried (`settledDetail`).
   */
  private settleDetails(): void {
    if (this.progress.outcome === undefined) return;
    for (const s of this.progress.steps) if (s.detail !== undefined) s.detail = settledDetail(s.detail);
  }

  /**
   * Publishes the current state; resolves once it, and every earlier state, is out. States published
   * within one tick go out together: the Reporter gets every one of them in order (each report after
   * the previous one ended) with one read of the job's message refs; BullMQ progress gets every step
   * change, a state followed in the same tick by one with the same steps (only details differ) being
   * written as that later one. Failures to publish are logged: they never fail the switch.
   */
  publish(): Promise<void> {
    if (this.silent) return Promise.resolve();
    this.settleDetails();
    this.progress.updatedAt = this.now();
    this.pending.push(this.published());
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
    return this.flushing;
  }

  /**
   * Publishes the final state at once, after every state still waiting for its tick: the BullMQ write
   * is sent now, the Reporter gets it for every message known so far, then for `late` (messages
   * attached during the switch, read again when the environment was released). `reported` settles
   * once the known messages have it; `settled` once everything has gone out.
   */
  publishFinal(late: Promise<MessageRef[]>): { reported: Promise<void>; settled: Promise<void> } {
    if (this.silent) return { reported: Promise.resolve(), settled: Promise.resolve() };
    this.settleDetails();
    this.progress.updatedAt = this.now();
    const final = structuredClone(this.progress);
    this.pending.push(final);
    void this.flush(Promise.resolve(this.refs));
    const reported = this.reported;
    const lateRefs = late.catch((e: unknown) => {
      this.warn(e);
      return [] as MessageRef[];
    });
    this.reported = reported.then(async () => {
      const refs = await lateRefs;
      if (refs.length > 0 && !this.silent)
        await this.deps.reporter.report(final, refs).catch((e: unknown) => this.warn(e));
    });
    // A message attached after `late` was read but before the final state was written sees no end
    // (the surface that attached it shows the end itself only once it is written): read the job's
    // messages once more after the write, and give the final state to any not reported yet.
    const written = this.written;
    const straggling = Promise.all([written, lateRefs]).then(async ([, lateOnes]) => {
      if (this.silent) return;
      const known = new Set([...this.refs, ...lateOnes].map(messageRefKey));
      const members = await this.deps.redis.smembers(this.deps.keys.messages(this.job.id ?? ''));
      const missed = withAttached(this.own, members).filter((r) => !known.has(messageRefKey(r)));
      if (missed.length > 0) await this.deps.reporter.report(final, missed);
    });
    const checked = straggling.catch((e: unknown) => this.warn(e));
    return {
      reported,
      settled: Promise.all([this.written, this.reported, checked]).then(() => undefined),
    };
  }

  private flush(fresh?: Promise<MessageRef[]>): Promise<void> {
    if (this.silent) {
      this.pending = [];
      this.flushing = undefined;
    }
    const batch = this.pending;
    if (batch.length === 0) return Promise.all([this.written, this.reported]).then(() => undefined);
    this.pending = [];
    this.flushing = undefined;
    batch.forEach((snapshot, i) => {
      const next = batch[i + 1];
      if (next === undefined || stepsOf(next) !== stepsOf(snapshot)) this.write(snapshot);
    });
    const messages = (fresh ?? this.messages()).catch((e: unknown) => {
      this.warn(e);
      return this.refs;
    });
    this.reported = this.reported.then(async () => {
      const refs = await messages;
      if (refs.length === 0) return;
      for (const snapshot of batch) {
        if (this.silent) return;
        await this.deps.reporter.report(snapshot, refs).catch((e: unknown) => this.warn(e));
      }
    });
    return Promise.all([this.written, this.reported]).then(() => undefined);
  }

  /**
   * Sends a BullMQ progress write at once: the writes of one job share one connection, so Redis
   * applies them in order (a write overtaken by a newer one is repaired in `landed`).
   */
  private write(snapshot: Progress): void {
    const seq = ++this.seq;
    this.newest = snapshot;
    const write = this.job.updateProgress(snapshot).then(
      () => this.landed(seq),
      (e: unknown) => this.warn(e),
    );
    this.written = Promise.all([this.written, write]).then(() => undefined);
  }

  /** Publishes without waiting: intermediate steps stay off the switch's critical path. */
  post(): void {
    void this.publish();
  }

  /**
   * Write `seq` is in Redis. Writes are sent in order on one connection, so they land in order; only
   * a script resent after NOSCRIPT could land late, over a newer state: then the newest goes again.
   */
  private async landed(seq: number): Promise<void> {
    if (this.silent) return;
    if (seq > this.landedSeq) {
      this.landedSeq = seq;
      return;
    }
    this.landedSeq = this.seq;
    await this.job.updateProgress(this.newest).catch((e: unknown) => this.warn(e));
  }

  private warn(e: unknown): void {
    this.deps.logger.warn({ err: e, jobId: this.job.id }, 'progress publish failed; the switch goes on');
  }

  /**
   * The job's chat messages: those read within the last `REFS_MAX_AGE_MS` (under the lock or by an
   * earlier publish), else read again. A message attached while the switch runs is therefore
   * reported to within a second, and always gets the final state (`publishFinal`).
   */
  private async messages(): Promise<MessageRef[]> {
    const now = this.now();
    if (now - this.refsReadAt < REFS_MAX_AGE_MS) return this.refs;
    const attached = await this.deps.redis.smembers(this.deps.keys.messages(this.job.id ?? ''));
    this.refs = withAttached(this.own, attached);
    this.refsReadAt = now;
    return this.refs;
  }
}

/** The steps in the order a switch goes through them (and a job's progress lists them). */
const STEP_ORDER: readonly StepName[] = Object.values(StepName);

/** How long the job's message refs read from Redis are reused by intermediate publishes. */
const REFS_MAX_AGE_MS = 1_000;

/** The steps and their states (what a follower must see change), plus the outcome. */
function stepsOf(p: Progress): string {
  return `${p.steps.map((s) => `${s.step}:${s.state}`).join(',')}|${p.outcome ?? ''}`;
}

/**
 * Longest reason a failed step's detail keeps: the steps come before the final message in a Discord
 * description (4096 characters), so a long reason must not push where traffic is now out of it.
 */
const STEP_DETAIL_MAX = 1000;

/**
 * A failed step's detail in an attempt that is retried: what failed, then `(attempt 1 of 6; retrying)`
 * (what is said is cut so that this stays within `STEP_DETAIL_MAX`: a resumed job clips details).
 */
function retryingDetail(said: string, attempt: number, maxAttempts: number): string {
  const suffix = ` (attempt ${attempt} of ${maxAttempts}; retrying)`;
  return `${clipMessage(said, STEP_DETAIL_MAX - suffix.length)}${suffix}`;
}

const RETRYING_SUFFIX = / \(attempt (\d+) of (\d+); retrying\)$/;

/**
 * The detail of a step an earlier attempt failed only because it lost track of the platform's
 * operation (`retryingDetail`), once a later attempt found what became of it (`then`): what failed,
 * then `(attempt 1 of 6 could not follow it; the platform finished it)`, or, for a request whose
 * answer was lost, `(attempt 1 of 6: the request failed, but the platform did it)`.
 */
function lostTrackDetail(detail: string, then: string): string {
  const retrying = RETRYING_SUFFIX.exec(detail);
  if (retrying === null) return detail;
  const suffix = ` (attempt ${retrying[1]} of ${retrying[2]}${then})`;
  return `${clipMessage(detail.slice(0, retrying.index), STEP_DETAIL_MAX - suffix.length)}${suffix}`;
}

/**
 * A step detail as a state with an outcome says it: a final message never promises a retry, so a
 * step a retried attempt failed (carried by the later attempts) says what happened, `(attempt 1 of 6
 * failed; retried)`.
 */
function settledDetail(detail: string): string {
  return detail.replace(RETRYING_SUFFIX, ' (attempt $1 of $2 failed; retried)');
}

/** How many domains a message or step detail names before it counts the rest. */
const NAMED_DOMAINS = 5;

/**
 * Characters the named domains of one message may take (hostnames run to 253 characters): with the
 * sentences around them a message stays within an audit entry (`AUDIT_MESSAGE_MAX`), a Slack section
 * and a Discord description, even once escaped for them.
 */
const NAMED_DOMAINS_ROOM = 700;

/** "shop.acme.com → dpl_1" (or "→ no answer" when it did not answer). */
function describeTraffic(t: Traffic): string {
  return `${t.hostname} → ${t.deploymentId ?? 'no answer'}`;
}

/**
 * `traffic` for a sentence: the first `NAMED_DOMAINS` domains (fewer when they would take more than
 * `room` characters; always one), then "… and 245 more". The job's traffic list (the view's "Where
 * traffic is now" block) keeps every domain: a message listed all of them, and with hundreds a chat
 * surface or the audit log cut it before the sentences after it.
 */
function nameTraffic(traffic: readonly Traffic[], room = NAMED_DOMAINS_ROOM): string {
  const listed: string[] = [];
  let used = 0;
  for (const t of traffic.slice(0, NAMED_DOMAINS)) {
    const item = describeTraffic(t);
    const cost = item.length + (listed.length > 0 ? 2 : 0);
    if (listed.length > 0 && used + cost > room) break;
    listed.push(item);
    used += cost;
  }
  const rest = traffic.length - listed.length;
  if (rest > 0) listed.push(`… and ${rest} more`);
  return listed.join(', ');
}

/**
 * `verify_timeout`: some domains are not on the target when verification's time is up. `headline` says
 * how many; `named` (a sentence) names a few of them. The job's final message says where traffic is now
 * between the two (`endMessage`); the step's detail and the logs have both (the error's message).
 */
class VerifyTimeoutError extends SyError {
  constructor(
    readonly headline: string,
    readonly named: string,
    traffic: readonly Traffic[],
  ) {
    super('verify_timeout', `${headline} ${named}`, { retry: false, context: { traffic } });
  }
}

/**
 * A failed or stale job's final message: `reason`, then `where` (where traffic is now, and for a stale
 * plan that nothing was done), then `named` (a few of the domains the reason counts, if any), within
 * `AUDIT_MESSAGE_MAX`. Where traffic is now comes before any list of domains and is never what gets cut:
 * the list goes first, then the reason is shortened (ending in `…`; a stale plan's reason names up to
 * 20 hostnames), so neither the audit entry nor a chat surface's limits lose it.
 */
function endMessage(reason: string, where: string, named?: string): string {
  const head = `${reason} ${where}`;
  const full = named === undefined ? head : `${head} ${named}`;
  if (full.length <= AUDIT_MESSAGE_MAX) return full;
  if (head.length <= AUDIT_MESSAGE_MAX) return clipMessage(full, AUDIT_MESSAGE_MAX);
  return `${clipMessage(reason, Math.max(1, AUDIT_MESSAGE_MAX - where.length - 1))} ${where}`;
}

function whereTraffic(snapshot: EnvironmentSnapshot): string {
  const env = snapshot.environment;
  return `${env.slug} is serving ${env.currentDeploymentId ?? 'nothing'}${env.rolledBack ? ' (rolled back: automatic deploys paused)' : ''}.`;
}

/**
 * Where traffic is now, for a job's final message: `whereTraffic`, or that the platform could not say
 * (`snapshot` undefined); with `target`, adding that the deployment serving is that switch's target.
 */
function whereNow(
  snapshot: EnvironmentSnapshot | undefined,
  target?: { readonly id: string; readonly action: string },
): string {
  if (snapshot === undefined)
    return 'Where traffic is now could not be read from the platform: check it there.';
  const isTarget = target !== undefined && snapshot.environment.currentDeploymentId === target.id;
  return `${whereTraffic(snapshot)}${isTarget ? ` That is the target of this ${target.action}.` : ''}`;
}

/**
 * The sentence a failure ends a job with. A platform HTTP error is told in words (its raw form, with
 * the URL, stays in the logs); `request` names the request it answered when known ("the rollback
 * request"). An operation that could not be read (`OperationUnreadError`) is told by what the
 * platform answered; only when `retrying` (a step's detail of an attempt that is retried) does it say
 * the operation is followed once the platform answers: after the last attempt nothing follows it.
 * Other errors keep their message, ended as a sentence.
 */
function failureSentence(err: SwitchyardError, request: string | undefined, retrying = false): string {
  if (err instanceof OperationUnreadError) {
    const cause = failureSentence(err.reason, undefined).replace(/\.$/, '');
    const unread = `${cause}, so the state of operation ${err.ref.id}, which an earlier attempt of this ${err.action} started, could not be read`;
    return retrying
      ? `${unread}; it is kept and followed once the platform answers, never started twice.`
      : `${unread}.`;
  }
  if (!(err instanceof PlatformHttpError)) return asSentence(err.message);
  let what = request;
  if (what === undefined) {
    let path = err.url;
    try {
      path = new URL(err.url).pathname;
    } catch {
      // Not a URL: keep it as given.
    }
    what = `a request (${err.method} ${path})`;
  }
  if (err.status === 0) {
    return err.platformCode === 'timeout'
      ? `The platform did not answer ${what} in time.`
      : `The platform could not be reached for ${what}.`;
  }
  const reason = STATUS_CODES[err.status];
  const code =
    err.platformCode !== undefined && err.platformCode !== String(err.status) ? ` (${err.platformCode})` : '';
  return `The platform answered ${err.status}${reason ? ` ${reason}` : ''}${code} to ${what}.`;
}

/**
 * What made a retried attempt fail its `reactivating`/`switching` step (`StepRecord.failure`): its
 * switch request got no usable answer (the platform not reached, no answer in time, or an answer that
 * is no "no": a 408, a 5xx), after which the platform may have switched; or the platform refused that
 * request (`definitelyNotStarted`); or it reports the operation failed; or any other fault. `switchCall`
 * says `e` is what the rollback/promote call threw; `lockLost`, that the attempt reports its lost lock
 * instead.
 */
function stepFailure(e: unknown, err: SwitchyardError, switchCall: boolean, lockLost: boolean): StepFailure {
  if (switchCall && !lockLost && err instanceof PlatformHttpError)
    return definitelyNotStarted(err) ? 'refused' : 'unanswered';
  if (switchCall && definitelyNotStarted(e)) return 'refused';
  if (err.code === 'platform_operation_failed') return 'operationFailed';
  return 'lostTrack';
}

/**
 * Whether `step` failed because its switch request got no usable answer (`stepFailure`), so that the
 * platform may have switched. A step written by a worker from before `failure` was stored has none:
 * then its detail tells, by the words `failureSentence` used for such a fault (the platform not
 * reached, no answer in time, an answer that is no "no"); any other wording says something else.
 */
function unansweredRequest(step: StepRecord, action: SwitchJobData['action']): boolean {
  if (step.failure !== undefined) return step.failure === 'unanswered';
  const said = (step.detail ?? '').replace(RETRYING_SUFFIX, '');
  const request = `the ${action} request`;
  if (said === `The platform could not be reached for ${request}.`) return true;
  if (said === `The platform did not answer ${request} in time.`) return true;
  const answered = /^The platform answered (\d{3})\b.* to (.+)\.$/.exec(said);
  if (answered === null || answered[2] !== request) return false;
  const status = Number(answered[1]);
  return !(status >= 400 && status < 500 && status !== 408);
}

/** `text` ending with a full stop (unless it already ends a sentence). */
function asSentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** Why an attempt stopped owning what it needs: see `AttemptLock`. */
type LockLoss =
  /** The environment lock is gone (expired, or taken by another attempt); the job lock is still held. */
  | 'environment'
  /** The BullMQ job lock is gone: the job may have been handed to another attempt. */
  | 'job'
  /** No renewal was confirmed for a whole lock duration (Redis unreachable): both may have expired. */
  | 'unconfirmed';

function lockLostError(environment: string, reason: LockLoss, cause?: unknown): SyError {
  const what =
    reason === 'environment'
      ? `lost the ${environment} lock mid-switch`
      : reason === 'job'
        ? `lost its job lock mid-switch (the job may have been handed to another attempt)`
        : `could not confirm its ${environment} lock for a whole lock duration (Redis unreachable?)`;
  return new SyError('lock_lost', `This attempt ${what}; it stopped before acting again.`, {
    retry: true,
    context: { reason },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * One attempt's hold on its environment lock and its BullMQ job lock: renews both every third of the
 * lock duration (in one script), aborts `signal` once either is lost, or once no renewal has been
 * confirmed for a whole lock duration (elapsed time on this host, `Clock.monotonic`: a step of the wall
 * clock is no lost renewal), and fences the platform call. After a loss it keeps renewing
 * the environment lock it may still hold until `stop()`: the attempt may be inside a platform call,
 * and no other switch of the environment may start before that call has returned.
 */
class AttemptLock {
  lost: LockLoss | undefined;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  /**
   * When the last confirmed renewal (or the acquisition, `acquiredAt`) was sent, as a monotonic
   * reading (`monotonicNow`): how long renewals went unconfirmed is elapsed time on this host. Read off
   * the wall clock, a step of it (an NTP correction, a VM resumed) would abort a healthy attempt as
   * unconfirmed (a forward step), or hold this value still while renewals sent "earlier" were not
   * counted, so that a Redis that really went away would be noticed that much later (a backward step).
   */
  private confirmedAt: number;
  private checking = false;
  private stopped = false;

  constructor(
    private readonly deps: ProcessorDeps,
    private readonly environment: string,
    readonly owner: string,
    private readonly jobLock: JobLock | undefined,
    private readonly run: AttemptRun,
    acquiredAt: number,
    private readonly log: Logger,
    private readonly onLoss: (reason: LockLoss) => void,
  ) {
    this.confirmedAt = acquiredAt;
    const every = Math.max(50, Math.floor(deps.lock.ttlMs / 3));
    this.timer = setInterval(() => this.tick(), every);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether the job may belong to another attempt now: then this one publishes nothing. */
  get silenced(): boolean {
    return !this.reclaimed && !this.orphaned && (this.lost === 'job' || this.lost === 'unconfirmed');
  }

  /** Set when `jobGone` found the job deleted from Redis: no other attempt can own it, this one speaks. */
  private orphaned = false;

  /** Set when `stillOwnsJob` confirmed the job lock after all: the attempt may speak for the job again. */
  private reclaimed = false;

  /** Throws the lock-lost error once a loss is known. */
  assertHeld(): void {
    if (this.lost) throw lockLostError(this.environment, this.lost);
  }

  private tick(): void {
    if (this.stopped) return;
    if (monotonicNow(this.deps.clock) - this.confirmedAt >= this.deps.lock.ttlMs) this.lose('unconfirmed');
    void this.check();
  }

  /** Renews both locks now and records what was lost (also run on BullMQ's `lockRenewalFailed`). */
  async check(): Promise<void> {
    if (this.stopped || this.checking) return;
    this.checking = true;
    const sentAt = monotonicNow(this.deps.clock);
    try {
      this.note(await this.deps.lock.renew(this.environment, this.owner, this.jobLock), sentAt);
    } catch (e) {
      this.log.warn({ err: e }, 'environment lock renewal failed');
    } finally {
      this.checking = false;
    }
  }

  /**
   * The fence right before rollback/promote: both locks are confirmed held in one round trip, which
   * also writes `value` to `key` when it is empty; true when it was written. Throws the lock-lost error
   * (retryable) when either lock is gone or cannot be confirmed.
   */
  async fence(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.assertHeld();
    const sentAt = monotonicNow(this.deps.clock);
    let res: Awaited<ReturnType<EnvironmentLock['fence']>>;
    try {
      res = await this.deps.lock.fence(this.environment, this.owner, this.jobLock, key, value, ttlMs);
    } catch (e) {
      throw new SyError(
        'lock_lost',
        `Could not confirm the ${this.environment} lock before switching (${e instanceof Error ? e.message : String(e)}); nothing was done.`,
        { retry: true, cause: e },
      );
    }
    this.note(res, sentAt);
    this.assertHeld();
    return res.written;
  }

  private note(res: { held: boolean; jobLockHeld: boolean }, sentAt: number): void {
    if (this.stopped) return;
    if (!res.jobLockHeld) this.lose('job');
    else if (!res.held) this.lose('environment');
    else if (sentAt > this.confirmedAt) this.confirmedAt = sentAt;
  }

  lose(reason: LockLoss): void {
    const first = this.lost === undefined;
    // A later, graver finding (the job lock too) still silences the attempt, also one that had
    // reclaimed its job after renewals it could not confirm (`stillOwnsJob`).
    const graver =
      (this.lost === 'environment' && reason !== 'environment') ||
      (this.lost === 'unconfirmed' && reason === 'job');
    if (!first && !graver) return;
    this.lost = reason;
    if (reason === 'job') this.reclaimed = false;
    this.onLoss(reason);
    if (first) {
      this.log.warn({ reason }, 'switch attempt lost its lock: stopping at the next step');
      this.controller.abort(lockLostError(this.environment, reason));
    }
  }

  /**
   * Whether this attempt still holds its BullMQ job lock (asked again after its renewals could not be
   * confirmed): then no other attempt has the job. Asks for up to one lock duration while Redis does
   * not answer; past that the job lock has expired and the job is re-delivered (false).
   */
  async stillOwnsJob(): Promise<boolean> {
    // Elapsed time, like the renewals' (`confirmedAt`): a step of the wall clock neither ends nor
    // stretches this wait.
    const until = monotonicNow(this.deps.clock) + this.deps.lock.ttlMs;
    for (;;) {
      const left = until - monotonicNow(this.deps.clock);
      if (left <= 0) return false;
      // A renewal sent while Redis is down waits in the connection's queue: bounded by what is left.
      const renewed = await within(
        this.deps.clock,
        left,
        this.deps.lock.renew(this.environment, this.owner, this.jobLock).catch(() => undefined),
        undefined,
      );
      if (renewed !== undefined) {
        if (renewed.jobLockHeld && this.lost === 'unconfirmed') this.reclaimed = true;
        return renewed.jobLockHeld;
      }
      if (monotonicNow(this.deps.clock) >= until) return false;
      await this.deps.clock.sleep(Math.min(left, Math.max(50, Math.floor(this.deps.lock.ttlMs / 6))));
    }
  }

  /**
   * Whether the job itself is gone from Redis (its keys flushed, deleted or evicted under the running
   * switch), asked once this attempt lost its job lock: then no other attempt owns it or ever will (BullMQ
   * hands over only a job that exists), and nobody else will end it, so this attempt may speak for it
   * again (`silenced` is false from then on). One script reads, at one instant, that the job lock is not
   * this attempt's, that the job's hash does not exist, and that its run record shows no later run
   * under the environment lock than this one (an attempt that took the job over and ended it, the job
   * being removed since, keeps its end). Asks for up to one lock duration (Redis may be away); false
   * when it cannot tell.
   */
  async jobGone(): Promise<boolean> {
    if (this.orphaned) return true;
    const { keys } = this.deps;
    const asked = this.deps.redis
      .eval(
        JOB_GONE,
        3,
        keys.jobLock(this.run.jobId),
        keys.job(this.run.jobId),
        keys.run(this.run.jobId),
        this.jobLock?.token ?? '',
        this.run.createdAt,
        this.run.run,
      )
      .then(
        (res) => res === 1,
        () => false,
      );
    const gone = await within(this.deps.clock, this.deps.lock.ttlMs, asked, false);
    if (gone) {
      this.orphaned = true;
      this.log.error("the switch's job is gone from Redis (flushed, deleted or evicted) while it ran");
    }
    return gone;
  }

  /** Stops renewing (the attempt no longer acts; its environment lock is being released). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}

/** Which job and run an attempt is (what `AttemptLock.jobGone` checks against). */
interface AttemptRun {
  readonly jobId: string;
  /** The BullMQ job's creation time (its run record's `ts`). */
  readonly createdAt: number;
  /** This run's number under the environment lock (its run record's `runs` once it took the lock). */
  readonly run: number;
}

/**
 * Whether a job is gone from Redis under an attempt that lost its job lock. KEYS[1] the job lock,
 * KEYS[2] the job's hash, KEYS[3] its run record; ARGV[1] the attempt's job lock token ('' when it
 * has none), ARGV[2] the job's creation time, ARGV[3] the attempt's run number. Returns 1 when the job
 * lock is not the attempt's, the job does not exist, and no later run of the same job took the
 * environment lock; else 0.
 */
const JOB_GONE = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local run = redis.call('HMGET', KEYS[3], 'ts', 'runs')
if run[1] == ARGV[2] and tonumber(run[2]) ~= tonumber(ARGV[3]) then return 0 end
return 1
`;

/**
 * Drops the reservation of a job that will never take it over (`EnvironmentLock.dropAbandonedReservation`),
 * saying so; false when it was not dropped or Redis could not be asked.
 */
async function dropAbandonedReservation(
  deps: ProcessorDeps,
  environment: string,
  reservation: string,
): Promise<boolean> {
  const dropped = await deps.lock.dropAbandonedReservation(environment, reservation).catch(() => false);
  if (!dropped) return false;
  deps.logger.warn(
    { environment, reservedFor: ownerJobId(reservation) },
    'dropped the environment reservation of a job that is gone or ended (it will not take it over)',
  );
  return true;
}

/** What the job's operation key holds: an operation ref, and/or whether a switch was started. */
interface StoredOperation {
  readonly ref: OperationRef | undefined;
  /** An earlier attempt of this job called rollback/promote (a ref or a started marker is stored). */
  readonly started: boolean;
  /**
   * An earlier request of this job got no usable answer (a 408, a 5xx, none at all), so it may have
   * switched without any operation of it being known: its started marker is stored, or the ref of a
   * later request that it preceded (`askedBefore`). Still true once that later operation failed.
   */
  readonly unanswered: boolean;
  /** With `unanswered`: the `liveSince` stored with it (startedMarkerSchema), when known. */
  readonly liveSince?: number;
}

/** Processes one attempt of a switch job (see the module header). */
export async function processSwitch(
  deps: ProcessorDeps,
  job: Job,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Progress> {
  const jobId = job.id ?? '';
  const parsed = switchJobSchema.safeParse(job.data);
  if (!parsed.success) return endUnreadable(deps, job, parsed.error);
  const data = parsed.data;
  const log = deps.logger.child({ jobId, planId: data.planId, environment: data.environment });
  const attempt = job.attemptsMade + 1;
  const maxAttempts = job.opts.attempts ?? 1;
  const tracker = new Tracker(
    job,
    deps,
    queuedProgress(jobId, data, { startedAt: data.requestedAt, attempt, updatedAt: deps.clock.now() }),
    data.messages,
  );
  if ((job.stalledCounter ?? 0) > MAX_STALLS) return endAfterStalls(deps, job, data, tracker, log);
  // An earlier attempt finished this switch and published its success, but BullMQ never heard of it
  // (its completion was lost with its job lock: a Redis pause, a frozen worker). Done: nothing to
  // switch, re-edit, audit or count again.
  const finished = progressSchema.safeParse(job.progress);
  if (finished.success && finished.data.outcome === 'succeeded' && finished.data.jobId === jobId) {
    log.info('switch already succeeded in an earlier attempt whose completion was lost; ending it');
    return finished.data;
  }
  // What an earlier attempt found out about the target (a resumed switch does not validate it again).
  if (finished.success && finished.data.jobId === jobId && finished.data.targetStandby !== undefined)
    tracker.progress.targetStandby = finished.data.targetStandby;
  // The steps earlier runs of this job published: a run that resumes it shows them as they happened.
  const earlier = finished.success ? earlierSteps(finished.data, jobId, data.planId) : undefined;

  // 1. The environment lock: one switch per environment at a time, across processes, owned by this
  // attempt (another attempt of the same job waits like any other job). The operation ref an earlier
  // attempt stored is read under the lock in the same round trip.
  const owner = lockOwner(jobId, randomBytes(6).toString('hex'));
  const jobLock = token === undefined ? undefined : { key: deps.keys.jobLock(jobId), token };
  const opKey = deps.keys.operation(jobId);
  const msgsKey = deps.keys.messages(jobId);
  // Taking the lock also takes the job out of the environment's waiters and records this run (the
  // previous one tells the `started` audit entry whether, and why, the job runs again).
  const run = {
    jobId,
    createdAt: job.timestamp,
    attempt,
    stalls: job.stalledCounter ?? 0,
  };
  // A monotonic reading, as the attempt's renewals are timed (`AttemptLock.confirmedAt`).
  let askedAt = monotonicNow(deps.clock);
  let got = await deps.lock.acquireAndRead(data.environment, owner, opKey, msgsKey, run);
  if (!got.acquired) {
    try {
      // Parked as a waiter with its attempt count: a release wakes this wait, never a later backoff.
      await deps.lock.park(
        data.environment,
        { jobId, createdAt: job.timestamp, attemptsMade: job.attemptsMade },
        data.requestedAt,
      );
      // The holder may have released between the two calls: look once more before sleeping.
      askedAt = monotonicNow(deps.clock);
      let again = await deps.lock.acquireAndRead(data.environment, owner, opKey, msgsKey, run);
      // A reservation whose job is gone (removed, ended, or replaced by a new job of the same id) has no
      // next attempt to take it over: it is dropped and the environment taken at once, instead of every
      // job waiting out its TTL (minutes) for a job that no longer exists.
      if (
        !again.acquired &&
        isRetryReservation(again.owner) &&
        (await dropAbandonedReservation(deps, data.environment, again.owner))
      ) {
        askedAt = monotonicNow(deps.clock);
        again = await deps.lock.acquireAndRead(data.environment, owner, opKey, msgsKey, run);
      }
      if (!again.acquired) {
        // A reservation (`retryReservation`) is a job between two attempts (backing off, handed back at
        // shutdown, or stalled) after asking the platform for a switch whose outcome it does not know:
        // that switch may be running, so it is said as one.
        const reserved = isRetryReservation(again.owner);
        const detail =
          again.holder === jobId
            ? reserved
              ? `Waiting: an earlier job of this plan asked the platform to switch ${data.environment} and got no answer; it holds ${data.environment} until its next attempt, or until that hold expires.`
              : `Waiting: an earlier attempt of this switch still holds ${data.environment}; it stops at its next step, or its hold expires within ${Math.ceil(deps.lock.ttlMs / 1000)}s.`
            : reserved
              ? `Waiting: another ${data.environment} switch is running (job ${again.holder}, between two attempts; its switch may still be running on the platform).`
              : `Waiting: another ${data.environment} switch is running (job ${again.holder}).`;
        if (!(finished.success && waitingSaid(finished.data, detail))) {
          tracker.progress.steps =
            earlier === undefined
              ? [{ step: 'queued', state: 'running', startedAt: data.requestedAt, detail }]
              : waitingSteps(earlier, detail, deps.clock.now());
          await tracker.publish();
        }
        const jitter = Math.round(Math.random() * deps.lockRetryMs * 0.2);
        await job.moveToDelayed(Date.now() + deps.lockRetryMs + jitter, token);
        throw new DelayedError();
      }
      got = again;
    } catch (e) {
      // The job does not wait parked after all (a fault before it could): it is no waiter any more.
      if (!(e instanceof DelayedError))
        await deps.lock.removeWaiter(data.environment, jobId).catch(() => undefined);
      throw e;
    }
  }
  const stored = parseStored(got.value);
  const previousRun = got.previous;
  tracker.attached(got.members);
  if (earlier !== undefined) {
    const detail = interruptedDetail(attempt, job.stalledCounter ?? 0, previousRun);
    tracker.resume(earlier, detail, stored.started);
    // Said in the log too: an operator reading this worker's log sees a switch taken over, not a new one.
    log.info(
      {
        resumed: true,
        attempt,
        stalls: job.stalledCounter ?? 0,
        platformAsked: stored.started,
        steps: earlier.map((s) => `${s.step}:${s.state}`).join(','),
      },
      detail === RESUMED_AFTER_HAND_BACK_DETAIL
        ? 'resuming a switch a worker shutting down handed back'
        : 'resuming a switch an earlier run left unfinished',
    );
  }

  const attemptRun = { jobId, createdAt: job.timestamp, run: previousRun.runs + 1 };
  const lock = new AttemptLock(deps, data.environment, owner, jobLock, attemptRun, askedAt, log, (reason) => {
    if (reason !== 'environment') tracker.silence();
  });
  const unwatch = deps.watchJobLock?.(jobId, () => void lock.check());
  const abort = signal ? AbortSignal.any([signal, lock.signal]) : lock.signal;
  const attemptStart = deps.clock.now();
  // `switchyard_switch_duration_seconds` covers every attempt: the first attempt to take the lock
  // records its start on the job and later ones read it. Not waited for: an attempt that ends before
  // the answer (Redis slow or away) counts from its own start.
  let switchStart = attemptStart;
  void firstRunStart(deps, jobId, attemptStart).then((at) => {
    switchStart = at;
  });
  // Releases the environment (once; the command is sent at once, and only deletes the lock if this
  // attempt still holds it) and then wakes the jobs waiting for it — another attempt of this job too;
  // resolves to the job's attached message refs as read in the same round trip (undefined when that
  // failed). Nothing waits for it: the release goes out on the worker's connection ahead of the job's
  // completion, and the wake-up runs in the background.
  // With `keepForRetryMs` (an attempt failing to be retried while a switch it or an earlier attempt
  // asked for may still be running on the platform) the environment is not freed: the lock is handed to
  // this job's retry (`retryReservation`) for that long, so that no other job asks the platform for a
  // switch of it meanwhile; nobody is woken (they could not take it). Released as above only when this
  // attempt no longer held the lock.
  let released: Promise<string[] | undefined> | undefined;
  const release = (keepForRetryMs?: number): Promise<string[] | undefined> => {
    if (released) return released;
    lock.stop();
    unwatch?.();
    if (keepForRetryMs !== undefined) {
      released = deps.lock
        .handOver(data.environment, owner, retryReservation(jobId, job.timestamp), keepForRetryMs)
        .then(
          (handed) => {
            if (handed) {
              log.info({ keepForRetryMs }, 'environment kept for the retry of a switch that may be running');
              return [];
            }
            return releaseNow();
          },
          (e: unknown) => {
            log.warn({ err: e }, 'handing the environment lock to the retry failed; it expires on its own');
            return undefined;
          },
        );
      deps.background(released);
      return released;
    }
    released = releaseNow();
    deps.background(released);
    return released;
  };
  const releaseNow = (): Promise<string[] | undefined> =>
    deps.lock.releaseAndRead(data.environment, owner, msgsKey).then(
      (got) => {
        if (got.waiters.length > 0)
          deps.background(deps.wake(data.environment, got.waiters).catch(() => undefined));
        return got.members;
      },
      (e: unknown) => {
        log.warn({ err: e }, 'environment lock release failed; it expires on its own');
        return undefined;
      },
    );

  try {
    return await runLocked(deps, job, data, tracker, {
      signal: abort,
      shutdown: signal,
      lock,
      log,
      switchStart: () => switchStart,
      maxAttempts,
      stored,
      previousRun,
      release,
    });
  } catch (e) {
    if (
      signal?.aborted &&
      signal.reason === SHUTDOWN_REASON &&
      !lock.silenced &&
      !(e instanceof UnrecoverableError)
    ) {
      // Graceful shutdown ran out of time: hand the job back so another worker resumes it at once
      // (the operation ref is stored, so it follows the same switch instead of starting another). The
      // environment is released first, so that the attempt resuming it does not wait for it; or, when
      // its switch may still be running on the platform, already handed to the job's resumed attempt
      // (`runLocked` did: the release below is that hand-over).
      log.info('worker shutting down: handing the switch back to the queue');
      await release();
      await job.moveToWait(token);
      throw new WaitingError();
    }
    throw e;
  } finally {
    void release();
  }
}

/**
 * Whether the job's published progress already says `detail` on its running step (a job waiting for
 * its environment says so once, not again at every look at it).
 */
function waitingSaid(published: Progress, detail: string): boolean {
  return published.steps.some((s) => s.state === 'running' && s.detail === detail);
}

/**
 * The steps earlier runs of job `jobId` published (`published`: its BullMQ progress, parsed), for a
 * run that resumes it: after its worker stopped answering, a hand-back on shutdown, or a retry.
 * Undefined when no earlier run took the job up (only `queued` was published: a job that waited for
 * its environment), when the progress is another job's, or when it has ended. One record per step (the
 * last published), in the order of the steps, each detail within `STEP_DETAIL_MAX`: the published
 * state stays bounded however often the job is resumed.
 */
function earlierSteps(published: Progress, jobId: string, planId: string): StepRecord[] | undefined {
  if (published.jobId !== jobId || published.planId !== planId || published.outcome !== undefined)
    return undefined;
  if (!published.steps.some((s) => s.step !== 'queued')) return undefined;
  const byName = new Map<StepName, StepRecord>();
  for (const s of published.steps) byName.set(s.step, s);
  const steps: StepRecord[] = [];
  for (const name of Object.values(StepName)) {
    const s = byName.get(name);
    if (s === undefined) continue;
    steps.push(s.detail === undefined ? { ...s } : { ...s, detail: clipMessage(s.detail, STEP_DETAIL_MAX) });
  }
  return steps;
}

/**
 * What a resumed job shows while it waits for its environment: the earlier runs' steps, the one an
 * earlier run was on still running (that run may hold the environment yet), saying why it waits; with
 * none running (the earlier attempt ended failed, to be retried) `validating`, this run's next step.
 */
function waitingSteps(earlier: readonly StepRecord[], detail: string, now: number): StepRecord[] {
  const steps = earlier.map((s) => ({ ...s }));
  const running = steps.find((s) => s.state === 'running');
  if (running !== undefined) {
    running.detail = detail;
    return steps;
  }
  const next: StepRecord = { step: 'validating', state: 'running', startedAt: now, detail };
  const at = steps.findIndex((s) => s.step === 'validating');
  if (at >= 0) steps[at] = next;
  else steps.splice(1, 0, next);
  return steps;
}

/**
 * What the step an earlier run was on says once this run took the job over: handed back by a worker
 * shutting down (the same attempt and stall count as that run), else its worker stopped answering.
 */
function interruptedDetail(attempt: number, stalls: number, previous: PreviousRun): string {
  return previous.runs > 0 && attempt === previous.attempt && stalls === previous.stalls
    ? RESUMED_AFTER_HAND_BACK_DETAIL
    : RESUMED_AFTER_STALL_DETAIL;
}

/** What one attempt's run under the environment lock works with (see `processSwitch`). */
interface LockedRun {
  /** Aborted when the attempt must stop: graceful shutdown ran out of time, or a lock was lost. */
  readonly signal: AbortSignal;
  /** BullMQ's signal of the attempt: aborted with `SHUTDOWN_REASON` when the job is handed back. */
  readonly shutdown: AbortSignal | undefined;
  readonly lock: AttemptLock;
  readonly log: Logger;
  /** When the job's first attempt took the lock (this attempt's start until that is known). */
  readonly switchStart: () => number;
  readonly maxAttempts: number;
  readonly stored: StoredOperation;
  /** The job's previous run under the lock, as recorded when this one took it. */
  readonly previousRun: PreviousRun;
  /**
   * Releases the environment; with `keepForRetryMs`, keeps it for the job's retry instead (see
   * `processSwitch`).
   */
  readonly release: (keepForRetryMs?: number) => Promise<string[] | undefined>;
}

/**
 * How long a job handed back at graceful shutdown keeps its environment for its resumed attempt while
 * its switch may still be running: one lock duration for a worker to take the job up from `wait`, and
 * one more as a margin. A job not resumed by then (no other worker running) loses it.
 */
function handBackKeepMs(deps: ProcessorDeps): number {
  return 2 * deps.lock.ttlMs;
}

/**
 * How long an attempt that lost its BullMQ job lock keeps the environment for the job's next attempt
 * while its switch may still be running: BullMQ's job lock expiring (one lock duration), its stalled
 * check moving the job back to `wait` (one more, the default stalled interval), and a worker taking it
 * up (one more).
 */
function stalledResumeMs(deps: ProcessorDeps): number {
  return 3 * deps.lock.ttlMs;
}

/** Whether graceful shutdown ran out of time for this attempt (it is handed back to the queue). */
function handingBack(shutdown: AbortSignal | undefined): boolean {
  return shutdown?.aborted === true && shutdown.reason === SHUTDOWN_REASON;
}

/** Resolves when `work` settles, or as soon as graceful shutdown runs out of time (whichever is first). */
function untilShutdown(work: Promise<unknown>, shutdown: AbortSignal | undefined): Promise<void> {
  const settled = work.then(
    () => undefined,
    () => undefined,
  );
  if (!shutdown) return settled;
  if (handingBack(shutdown)) return Promise.resolve();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = () => {
      if (handingBack(shutdown)) resolve();
    };
    shutdown.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([settled, aborted]).finally(() => {
    if (onAbort) shutdown.removeEventListener('abort', onAbort);
  });
}

/**
 * Throws the `forbidden` refusal of a queued job whose people the configuration in force in this
 * process no longer permits (`queuedSwitchRefusal`); nothing without `deps.permissions`.
 */
function judgeQueuedPeople(deps: ProcessorDeps, data: SwitchJobData): void {
  if (deps.permissions === undefined) return;
  const refusal = queuedSwitchRefusal(data, deps.permissions);
  if (refusal !== undefined) throw new RefusalError(refusal);
}

async function runLocked(
  deps: ProcessorDeps,
  job: Job,
  data: SwitchJobData,
  tracker: Tracker,
  run: LockedRun,
): Promise<Progress> {
  const { signal, lock, log, switchStart, maxAttempts, stored, release } = run;
  const jobId = job.id ?? '';
  const opKey = deps.keys.operation(jobId);
  const expect: PlanExpectation = {
    action: data.action,
    // A job queued for another project (PLATFORM or the project changed in the config since) is
    // refused as such, never as "traffic moved": its deployment ids mean nothing here.
    projectId: data.projectId,
    environment: data.environment,
    targetId: data.targetId,
    expectedCurrent: data.expectedCurrent,
    expectedRolledBack: data.expectedRolledBack,
  };
  // Audit entries of an attempt are appended one after the other (in order); the switch waits only
  // for its final entry, which follows every earlier one. An attempt that lost its job lock writes none.
  let audited: Promise<unknown> = Promise.resolve();
  // Whether the platform may have been asked to switch by this job (this attempt or an earlier one)
  // without the switch being known to have ended: a failure then may not be the end of it on the
  // platform, and the final message says so. `switchRef` is its operation, when known.
  let mayBeStarted = stored.started;
  let switchRef: OperationRef | undefined = stored.ref;
  // What the rollback/promote call threw, if it did (the final message names that request).
  let switchCallError: unknown;
  // The platform reported this job's switch done (its operation succeeded): what fails after that
  // fails verification, not the switch.
  let switchDone = false;
  // An earlier attempt's request got no answer, and traffic moved on before this attempt could tell
  // whether it switched: its plan is overtaken, but the platform may have switched for this job.
  let overtakenAfterAsking = false;
  const audit = (
    entry: Omit<AuditEntry, 'at' | 'environment' | 'action' | 'planId' | 'jobId' | 'targetId' | 'fromId'>,
  ): Promise<unknown> => {
    const full = auditEntry(deps, data, jobId, entry);
    const append = () =>
      lock.silenced
        ? undefined
        : deps.audit?.append(full).catch((e: unknown) => log.warn({ err: e }, 'audit append failed'));
    audited = audited.then(append);
    return audited;
  };

  try {
    tracker.start('validating');
    tracker.post();
    // Sent before the platform is called (not awaited): notices recognise the traffic move this
    // switch makes by this entry (src/notices.ts).
    // A run that resumes the same attempt (handed back, or after a stall) says so: no two `started`
    // entries of one job read the same.
    const startedNote = startedMessage(tracker.progress.attempt, job.stalledCounter ?? 0, run.previousRun);
    void audit({
      event: 'started',
      actor: data.requestedBy,
      ...(startedNote === undefined ? {} : { message: startedNote }),
    });
    // The people the job names must still be permitted by the config in force here: it may have
    // changed since the click (someone taken off the allow list, the two-person rule turned on) while
    // the job waited (no worker running, a retry's backoff, another switch of the environment). Judged
    // before the platform is asked anything: a platform that does not answer must not turn a switch
    // nobody permitted may make into retried platform failures (`failed`, not `refused`). The end
    // still reads where traffic is for its message, tolerating a failure (the catch below). Not once
    // an earlier attempt of this job asked the platform to switch: that switch may have happened, and
    // is followed (one whose operation the platform reports failed is judged once that is read, below).
    if (!stored.started) {
      lock.assertHeld();
      judgeQueuedPeople(deps, data);
    }
    let snapshot = await deps.platform.snapshot(data.environment);
    let ref = stored.ref;
    // Whether an earlier attempt of this job asked the platform to switch (and may have switched).
    let started = stored.started;
    let opStatus: OperationStatus | undefined;
    if (ref) {
      // The operation an earlier run started is this job's: every state from now on names it (the
      // final one too, when the platform finished it before this run looked: nothing is followed then).
      tracker.progress.operationId = ref.id;
      opStatus = await readOperation(deps, ref, data);
      // Timed out while still pending or under way on the platform: it may still switch, so this job
      // neither follows it longer nor starts another (the processor's end says it may still complete).
      if (opStatus?.state === 'failed' && opStatus.error?.mayStillComplete === true)
        throw operationFailed(opStatus, ref, data);
      if (!opStatus || opStatus.state === 'failed') {
        // The platform says the earlier attempt's operation failed, or definitely does not know it:
        // decide afresh (a fault reading it was rethrown above, keeping the ref). That operation did
        // not switch, so it explains nothing found now. A request of this job that came before it and
        // got no usable answer (`unanswered`) may have, though: the job stays one that asked, and a
        // started marker takes the ref's place, so that a later attempt knows it too.
        lock.assertHeld();
        if (stored.unanswered)
          await deps.redis.set(
            opKey,
            JSON.stringify({ started: lock.owner, at: deps.clock.now(), ...sinceField(stored.liveSince) }),
            'PX',
            OPERATION_TTL_MS,
          );
        else await deps.redis.del(opKey);
        tracker.interruptedFailed(
          `Interrupted: the platform reports the operation of this ${data.action} (${ref.id}) failed, or does not know it; a later run decided afresh.`,
        );
        ref = undefined;
        opStatus = undefined;
        delete tracker.progress.operationId;
        started = stored.unanswered;
        mayBeStarted = stored.unanswered;
        switchRef = undefined;
        // Without such a request the job now decides afresh, as one that never asked the platform to
        // switch: its people are judged as above (only now: whether the earlier switch failed took
        // reading its operation).
        lock.assertHeld();
        if (!started) judgeQueuedPeople(deps, data);
      }
    }
    lock.assertHeld();

    let needFollow = false;
    let storing: Promise<unknown> = Promise.resolve();
    // This attempt's own request was refused because an earlier attempt's request had switched already.
    let earlierLanded = false;
    // The switch verified below is an earlier attempt's (its operation stored, or its request found
    // landed): what changed since on the platform is not this attempt's doing.
    let switchedEarlier = false;
    // Whose switch the live history shows live (an earlier request of this job with no answer).
    const liveNow = started && !ref ? switchLiveNow(data, snapshot, stored.liveSince) : undefined;
    if (ref && opStatus && opStatus.state !== 'succeeded') {
      needFollow = true;
      tracker.followsEarlierOperation();
      tracker.endRunning(
        'done',
        `Resuming the ${data.action} started by an earlier attempt (operation ${ref.id}).`,
      );
    } else if (
      ref ||
      (started && (liveNow === 'own' || (isAlreadyDone(expect, snapshot) && liveNow !== 'other')))
    ) {
      // Only an earlier attempt of this job that asked the platform to switch counts as having done it.
      // Without its operation stored, that attempt's request got no answer: the step it failed for
      // that reason was the platform's. The live history showing the job's own switch newest, its
      // target current, tells it too when something without a history entry changed since (automatic
      // deploys resumed on a rolled-back target): that switch landed, and is not asked for again.
      if (ref) tracker.followsEarlierOperation();
      else tracker.earlierRequestLanded(data.action);
      switchedEarlier = true;
      if (snapshot.environment.currentDeploymentId === data.targetId || !ref) {
        tracker.endRunning(
          'done',
          `${data.targetId} already serves ${data.environment}: not switching again.`,
        );
        tracker.skip(
          'switching',
          `Already switched: the platform shows ${data.targetId} serving ${data.environment} (an earlier attempt did it), so it is not switched twice.`,
        );
      } else {
        // The operation is done but the environment serves another deployment (moved on since, which
        // verifying tells): the steps say only what is known, as the final message will.
        tracker.endRunning(
          'done',
          `The platform reports this job's ${data.action} (operation ${ref.id}) done: not switching again.`,
        );
        tracker.skip(
          'switching',
          `Already switched: the platform reports this job's ${data.action} (operation ${ref.id}, asked for by an earlier attempt) done, so it is not switched twice.`,
        );
      }
    } else if (isAlreadyDone(expect, snapshot)) {
      // The target is live, but not through this job: another switch made it so after this plan. An
      // earlier request of this job that got no answer is said with what the live history tells (it
      // shows someone else's switch put the target live): `failed`, like any end after asking.
      if (started) {
        overtakenAfterAsking = true;
        const moved = `Traffic moved since this plan was made: ${data.environment} now serves ${data.targetId}, not ${data.expectedCurrent}.`;
        throw overtakenError(
          data,
          data.targetId,
          askedThenMovedMessage(data, snapshot, stored.liveSince, moved, true),
        );
      }
      throw overtakenError(
        data,
        data.targetId,
        `Traffic moved since this plan was made: ${data.environment} now serves ${data.targetId}${data.action === 'rollback' ? ' (rolled back)' : ''}, the target of this ${data.action}, through another switch, not this one. Nothing was done.`,
      );
    } else {
      // A first attempt also checks the domains that would move against those the plan showed (the
      // job's `domains`): a job that waited behind another switch must not move domains its approvers
      // never saw. Not once an earlier attempt asked the platform to switch: that switch may itself
      // have begun moving them.
      const fresh = checkFresh(started ? expect : { ...expect, affectedHostnames: data.domains }, snapshot, {
        platform: deps.platform.name,
      });
      if (!fresh.ok && started) {
        // An earlier attempt of this job asked the platform to switch, and its answer never came (lost
        // on the way, or that attempt's worker stopped first): that switch may well have happened
        // before another one moved traffic on. Say so rather than "nothing moved"; a plan overtaken so
        // ends `failed` (`overtakenAfterAsking`), never `stale`, which says the platform did not switch.
        // A plan made for another project (also `plan_stale`) ends so too: the switch may have happened.
        overtakenAfterAsking = fresh.refusal.code === RefusalCode.planStale;
        // Only traffic moving (another deployment current, the rolled-back state flipped) is read
        // against the live history; a refusal of anything else (another project's snapshot, whose
        // history is not this environment's; the target gone or unable to take traffic) says only
        // that the plan no longer holds.
        const trafficMoved =
          fresh.refusal.code === RefusalCode.planStale && snapshot.project.id === data.projectId;
        throw new RefusalError({
          ...fresh.refusal,
          message: askedThenMovedMessage(
            data,
            snapshot,
            stored.liveSince,
            fresh.refusal.message,
            trafficMoved,
          ),
        });
      }
      if (!fresh.ok) throw new RefusalError(fresh.refusal);
      // The plan holds again, yet an earlier request of this job that got no answer may have switched
      // and someone moved traffic back since (judging the target wrong): the platform's live history,
      // when it keeps one, shows the target put live by this action after the job asked, then another
      // switch. Asking again would undo that person's move: the job ends as overtaken after asking.
      // Without a live history (Unkey, Vercel) nothing tells, and the job asks again.
      const undone = started ? askedThenUndoneMessage(data, snapshot, stored.liveSince) : undefined;
      if (undone !== undefined) {
        overtakenAfterAsking = true;
        throw overtakenError(data, data.expectedCurrent, undone);
      }
      const standby = fresh.value.status === 'standby';
      // Whether the `reactivating` step applies: views leave it out for a running target.
      tracker.progress.targetStandby = standby;
      if (standby)
        tracker.start(
          'reactivating',
          `${data.targetId} is in standby; reactivating it takes a little longer.`,
        );
      else tracker.start('switching');
      tracker.post();
      const request = {
        environment: data.environment,
        targetId: data.targetId,
        requestedBy: data.requestedBy.displayName,
        // Recorded with the switch by a platform that keeps a live history (the local one), so that
        // `ownEntry` knows this job's switch by its id: display names are not unique. The id is the
        // one `ownEntry` derives from the plan (the queue names every switch job so).
        jobId: jobIdForPlan(data.planId),
        // A platform that can (the local one) refuses atomically if the environment moved since the
        // check above: a push going live in between would otherwise be switched away unseen.
        expectedCurrent: data.expectedCurrent,
        expectedRolledBack: data.expectedRolledBack,
      };
      // The fence: both locks confirmed right before acting, and the started marker written with it.
      // It keeps where in the live history this job's switch can be: after the entry live now (after
      // the one live when an earlier request of it was sent, if any: that one may land too).
      const liveSince = started ? stored.liveSince : liveSinceNow(snapshot);
      const marker = JSON.stringify({ started: lock.owner, at: deps.clock.now(), ...sinceField(liveSince) });
      const markerWritten = await lock.fence(opKey, marker, OPERATION_TTL_MS);
      mayBeStarted = true;
      try {
        ref =
          data.action === 'rollback'
            ? await deps.platform.rollback(request)
            : await deps.platform.promote(request);
      } catch (e) {
        // An earlier attempt of this job asked the platform to switch and died before it recorded the
        // answer; the target was not current yet when this attempt validated, so it asked again. "The
        // target is current" now means that earlier request landed in between: this job's switch is
        // done, and traffic is verified instead of failing (nothing is asked again). This attempt's
        // marker stays: the job did ask the platform, so a later attempt does not ask a third time.
        if (started && e instanceof RefusalError && e.code === RefusalCode.targetIsCurrent) {
          earlierLanded = true;
          log.info(
            { code: e.code },
            `the platform refused the ${data.action} as ${data.targetId} is already current: the request of an earlier attempt of this job landed; verifying traffic`,
          );
        } else {
          switchCallError = e;
          if (definitelyNotStarted(e)) mayBeStarted = started;
          // A platform's definite "no" started nothing: this attempt's marker must not make a later one
          // believe this job switched (a fault keeps it: the switch may have started).
          if (markerWritten && definitelyNotStarted(e)) {
            await deps.lock.deleteIf(opKey, marker).catch(() => undefined);
          }
          throw e;
        }
      }
      if (earlierLanded) {
        const detail = `The platform answered that ${data.targetId} is already the current deployment: the ${data.action} an earlier attempt of this job asked for (it was interrupted before it recorded the platform's answer) has taken effect, so it is not asked for again.`;
        if (tracker.running()?.step === 'switching') tracker.endRunning('skipped', detail);
        else tracker.skip('switching', detail);
        lock.assertHeld();
      } else if (ref) {
        // Stored so that a worker recovering this job follows this operation instead of starting
        // another (stored even by an attempt that lost its lock meanwhile: the operation is this job's;
        // `XX` keeps a job that was replaced meanwhile from getting it).
        switchRef = ref;
        // An earlier request of this job whose answer was lost (`started`: only its marker was stored
        // here) may have switched: said with the ref, so that this operation failing does not make a
        // later attempt take that switch for another's.
        const kept = started ? { ...ref, askedBefore: true, ...sinceField(stored.liveSince) } : ref;
        storing = deps.redis.set(opKey, JSON.stringify(kept), 'PX', OPERATION_TTL_MS, 'XX');
        lock.assertHeld();
        needFollow = true;
      }
    }

    if (ref && needFollow) {
      tracker.progress.operationId = ref.id;
      tracker.post();
      await follow(deps, ref, tracker, signal, data);
    }
    await storing;
    // The switch is done on the platform: verify traffic.
    mayBeStarted = false;
    switchDone = true;
    // Known landed: the title of an end overtaken from here says "done, then overtaken" (src/views).
    tracker.progress.switchLanded = true;
    lock.assertHeld();
    tracker.start('verifying');
    tracker.post();
    // Verification reads where the platform says traffic is while it probes (for the final message,
    // and to stop at once when another switch moved the environment on): the newest read, else the
    // one made when validating.
    // The switch followed is the operation `ref`: a live history showing its target live since that
    // operation started, then another deployment, is this switch landed then overtaken.
    const verified = await verifyTraffic(deps, data, tracker, signal, ref?.startedAt);
    const traffic = verified.traffic;
    snapshot = verified.snapshot ?? snapshot;
    // Verified. The last attempt that only could not confirm its locks meanwhile, and still holds its
    // job, reports the success it verified (else it would say it gave up on a switch that is done).
    if (lock.lost === 'unconfirmed' && tracker.progress.attempt >= maxAttempts && (await lock.stillOwnsJob()))
      tracker.unsilence();
    else lock.assertHeld();
    tracker.start('done');
    tracker.endRunning('done');
    tracker.progress.outcome = 'succeeded';
    tracker.progress.traffic = traffic;
    const success = successMessage(data, traffic, snapshot, deps.platform.probe !== undefined, {
      switchedEarlier: switchedEarlier || earlierLanded,
    });
    const earlier = earlierLanded
      ? ` The request of an earlier attempt of this ${data.action} made the switch; this attempt's own request was refused as no longer needed (${data.targetId} was already current).`
      : '';
    tracker.progress.message = `${success.message}${earlier}`;
    tracker.progress.note = `${success.note}${earlier}`;
    const succeeded = audit({
      event: 'succeeded',
      actor: data.requestedBy,
      message: tracker.progress.message,
    });
    // Traffic is verified: the environment is released and the final state and audit entry go out at
    // once. The job completes as soon as every chat message known to it shows the final state (BullMQ
    // writes its completion after the release and the progress write, on the same connection, and the
    // completed job's return value is this final state). A message attached during the switch is read
    // again with the release and gets the final state in the background.
    const late = release().then((members) => (members === undefined ? [] : tracker.lateRefs(members)));
    const { reported, settled } = tracker.publishFinal(late);
    deps.background(Promise.all([settled, succeeded]));
    // A chat message that does not take the final state before graceful shutdown runs out of time
    // gets it in the background: the job completes (its return value is the final state).
    await untilShutdown(reported, run.shutdown);
    finish(deps, data, 'succeeded', switchStart());
    log.info({ outcome: 'succeeded' }, tracker.progress.message);
    return tracker.progress;
  } catch (e) {
    if (e instanceof DelayedError || e instanceof WaitingError) throw e;
    // The last attempt could not confirm its locks for a while (Redis unreachable) but still holds the
    // job now that Redis answers: no other attempt will ever end this job, so this one says how it
    // ended (else BullMQ fails it without a final state and its chat message stays "switching").
    const lastAndOurs =
      lock.lost === 'unconfirmed' && tracker.progress.attempt >= maxAttempts && (await lock.stillOwnsJob());
    if (lastAndOurs) tracker.unsilence();
    if (lock.silenced && !lastAndOurs) {
      // The job itself is gone from Redis (FLUSHDB, DEL, eviction): no other attempt owns it or will
      // ever end it, so this one says how the switch ended (else its chat message would say
      // "switching" for good), and where traffic is.
      if (await lock.jobGone()) {
        tracker.unsilence();
        return endOrphaned(deps, data, tracker, {
          log,
          shutdown: run.shutdown,
          switchRef,
          mayBeStarted,
          switchDone,
          switchStart: switchStart(),
          audit,
          err: e,
        });
      }
      // The job may be another attempt's now: nothing from this one (no state, audit or metric) may
      // overwrite that attempt's. BullMQ's completion of this attempt fails for want of the lock.
      log.warn(
        { reason: lock.lost, err: e },
        'switch attempt lost its job lock: stopped without publishing (the job is resumed elsewhere)',
      );
      const lost = lockLostError(data.environment, lock.lost ?? 'job', e);
      // A switch this job asked for may still be running on the platform, and the job is resumed
      // elsewhere (after BullMQ's stalled check) or retried: freeing the environment meanwhile would let
      // another job, finding it unchanged, ask for a second switch. Kept for the job's next attempt
      // instead, if this attempt still holds it (else nothing is freed): for `stalledResumeMs`, or the
      // longest backoff and one lock duration more when BullMQ takes this failure as the attempt's.
      if (mayBeStarted)
        void release(Math.max(stalledResumeMs(deps), deps.maxRetryDelayMs(job, lost) + deps.lock.ttlMs));
      throw lost;
    }
    if (handingBack(run.shutdown) && !lock.silenced && !(e instanceof UnrecoverableError)) {
      // Graceful shutdown ran out of time: `processSwitch` hands the job back to the queue. Nothing
      // failed and no attempt is used: the step it was on says so, and another worker resumes it.
      tracker.handedBack();
      await tracker.publish().catch(() => undefined);
      // A switch this job asked for may still be running on the platform: the environment goes to the
      // job's resumed attempt (back in `wait`, any worker takes it up at once), not to whichever job
      // a release would wake, which, finding it unchanged, would ask for a second switch.
      if (mayBeStarted) void release(handBackKeepMs(deps));
      throw e;
    }
    const err = lock.lost ? lockLostError(data.environment, lock.lost, e) : asSwitchyardError(e);
    const attempt = tracker.progress.attempt;
    const retrying = isRetryable(err) && attempt < maxAttempts;
    const said = failureSentence(
      err,
      e === switchCallError ? `the ${data.action} request` : undefined,
      retrying,
    );
    if (retrying) {
      tracker.endRunning(
        'failed',
        retryingDetail(said, attempt, maxAttempts),
        stepFailure(e, err, e === switchCallError, lock.lost !== undefined),
      );
      tracker.progress.code = err.code;
      await tracker.publish().catch(() => undefined);
      log.warn({ code: err.code, attempt }, `switch attempt failed, will retry: ${err.message}`);
      // A switch this job asked for may still be running on the platform (its answer lost, its
      // operation not followed to its end): freeing the environment now would let another job, finding
      // it unchanged, ask for a second switch of it while this one runs. Kept for the retry instead,
      // over the longest backoff and one lock TTL more (the retry's worker taking it up); sent before
      // BullMQ schedules the retry, on the same connection. A definite "no" started nothing: freed.
      if (mayBeStarted) void release(deps.maxRetryDelayMs(job, err) + deps.lock.ttlMs);
      throw err;
    }
    // A refusal (a rejected key, a missing permission) while following or verifying a switch the
    // platform accepted refuses nothing: the switch may have happened. Neither does a refusal of this
    // attempt's own request once an earlier attempt asked the platform to switch (its answer lost: a
    // 5xx, a timeout): the platform may well be busy with, or have done, that earlier request
    // (`mayBeStarted` is then what the earlier attempts left). Only a refusal before the platform was
    // ever asked by this job is the job's `refused`: that one says the platform did not switch.
    const afterAccepted = mayBeStarted || switchDone;
    // Overtaken while verifying (`verifyTraffic`): this job's switch landed, then another switch (or
    // a deploy) moved the environment on. Said as `plan_stale`, the code of a plan overtaken before it
    // ran, but never `stale` or `refused`: those say the platform did not switch for this run, and
    // notices would then announce this job's own move as made outside Switchyard. Not retried.
    // So is a plan overtaken after an earlier attempt's request that got no answer (`overtakenAfterAsking`).
    const overtaken = (switchDone || overtakenAfterAsking) && err.code === RefusalCode.planStale;
    const outcome = overtaken || (afterAccepted && outcomeOf(err) === 'refused') ? 'failed' : outcomeOf(err);
    // A verify_timeout names a few of the domains not on the target: after where traffic is now.
    const named = err instanceof VerifyTimeoutError ? err : undefined;
    const reason = named?.headline ?? said;
    let message = lastAndOurs
      ? `${reason} That was its last attempt: the ${data.action} is given up, and if the platform had started it, it may still complete. Check where traffic is before trying again.`
      : reason;
    // The platform may have started the switch (a 5xx, a timeout or a network error on the call, or an
    // operation still running): it may still complete, whatever traffic is on right now.
    // An operation the platform reports failed did not switch, unless the failure is only that the
    // adapter stopped waiting for it (`unfinishedOperation`).
    const mayStillComplete =
      !lastAndOurs &&
      !overtaken &&
      outcome === 'failed' &&
      mayBeStarted &&
      (err.code !== 'platform_operation_failed' || unfinishedOperation(err));
    const [now, opState] = await Promise.all([
      deps.platform.snapshot(data.environment).catch(() => undefined),
      mayStillComplete && switchRef
        ? deps.platform.operation(switchRef).catch(() => undefined)
        : Promise.resolve(undefined),
    ]);
    // The operation this job started (in an earlier attempt, say: `switchDone` is this attempt's
    // alone) reads succeeded now: the switch is done, and what failed is only verifying it (a later
    // attempt failing to read the platform at all, for instance). Said as such, never "may still complete".
    const doneOnPlatform = switchDone || (mayStillComplete && opState?.state === 'succeeded');
    if (
      doneOnPlatform &&
      outcome === 'failed' &&
      !lastAndOurs &&
      err.code !== 'verify_timeout' &&
      !overtaken
    ) {
      message = `The platform reports this ${data.action} done, but traffic could not be verified: ${message}`;
    } else if (mayStillComplete) {
      message = `${message} The platform may have started this ${data.action} and may still complete it: check where traffic is before trying again.`;
      if (switchRef && opState)
        message = `${message} The platform reports the operation it started (${switchRef.id}) as ${describeOperationState(opState)}.`;
    }
    const where = whereNow(now);
    if (outcome === 'stale') {
      // A stale plan's sentence says what changed; where traffic is now, and that nothing was done
      // (unless an earlier attempt asked the platform to switch: its sentence says so), end it.
      const nothing = message.includes('This job does nothing more.') ? '' : ' Nothing was done.';
      message = endMessage(message.replace(/ Nothing was done\.$/, ''), `${where}${nothing}`);
    } else {
      message = endMessage(message, where, named?.named);
    }
    // Whether this job's switch is known landed, for the view's title ("done, then overtaken", or only
    // "overtaken": an earlier request with no answer, which the platform may not have done).
    if (overtaken) tracker.progress.switchLanded = switchDone;
    if ((err.code === 'verify_timeout' || overtaken) && Array.isArray(err.context.traffic)) {
      tracker.progress.traffic = err.context.traffic as Traffic[];
    }
    // The step says why it failed; a reason naming many long hostnames is cut, not the chat message.
    await tracker.end(outcome, err.code, message, clipMessage(said, STEP_DETAIL_MAX));
    await audit({
      event: outcome === 'failed' ? 'failed' : 'refused',
      actor: data.requestedBy,
      code: err.code,
      message,
    });
    finish(deps, data, outcome, switchStart());
    // A stale plan, a refusal or a switch overtaken while verifying is an expected end, said in full
    // by the message (no stack helps); a failure is worth a look, with what failed.
    if (outcome === 'failed' && !overtaken) log.warn({ outcome, code: err.code, err: e }, message);
    // The platform refusing Switchyard itself (a rejected key, a missing permission, a precondition of
    // its own) needs an operator: said at warn, without a stack. A plan refused or made stale is the
    // expected answer to a person's request.
    else if (platformRefusalCodes.has(err.code)) log.warn({ outcome, code: err.code }, message);
    else log.info({ outcome, code: err.code }, message);
    throw new SwitchFailedError(err.code, message, outcome);
  }
}

/** What `endOrphaned` knows of the attempt's switch (see `runLocked`). */
interface OrphanedRun {
  readonly log: Logger;
  readonly shutdown: AbortSignal | undefined;
  /** The platform operation this job started, when known. */
  readonly switchRef: OperationRef | undefined;
  /** The platform may have been asked to switch by this job without the switch being known to have ended. */
  readonly mayBeStarted: boolean;
  /** The platform reported this job's switch done. */
  readonly switchDone: boolean;
  readonly switchStart: number;
  readonly audit: (
    entry: Omit<AuditEntry, 'at' | 'environment' | 'action' | 'planId' | 'jobId' | 'targetId' | 'fromId'>,
  ) => Promise<unknown>;
  /** What stopped the attempt (its lock loss). */
  readonly err: unknown;
}

/**
 * The end of a switch whose job was deleted from Redis while it ran (`AttemptLock.jobGone`: FLUSHDB, DEL,
 * eviction): nobody else will end it. An operation this job started is followed to its end first (its
 * steps published as usual), so the final state says where the switch left traffic; the end is `failed`
 * (code `job_lost`: traffic was not verified), saying that Switchyard's record of the switch was lost,
 * what the platform reports of the switch, and where traffic is now. Published to the chat messages the
 * attempt knows (the job's progress cannot be written any more: the job does not exist), audited,
 * counted and logged at error.
 */
async function endOrphaned(
  deps: ProcessorDeps,
  data: SwitchJobData,
  tracker: Tracker,
  run: OrphanedRun,
): Promise<never> {
  const { switchRef, mayBeStarted, log } = run;
  let switchDone = run.switchDone;
  let opState: OperationStatus | undefined;
  if (switchRef && mayBeStarted && !switchDone) {
    // The lock's signal is aborted: the operation is followed under the shutdown signal only.
    const signal = run.shutdown ?? new AbortController().signal;
    switchDone = await follow(deps, switchRef, tracker, signal, data).then(
      () => true,
      () => false,
    );
    // Told only of a switch not known done (the `mayBeStarted` sentence below).
    if (!switchDone) opState = await deps.platform.operation(switchRef).catch(() => undefined);
  }
  const now = await deps.platform.snapshot(data.environment).catch(() => undefined);
  const reason = `Switchyard's record of this ${data.action} was lost from Redis while it ran (its job was deleted: FLUSHDB, DEL or eviction), so it stopped following it.`;
  let platform: string;
  if (switchDone)
    platform = `The platform reports the ${data.action} to ${data.targetId} done; traffic on it was not verified.`;
  else if (mayBeStarted)
    platform =
      switchRef && opState
        ? `The platform was asked to switch ${data.environment} to ${data.targetId} and reports that operation (${switchRef.id}) as ${describeOperationState(opState)}.`
        : `The platform was asked to switch ${data.environment} to ${data.targetId} and may still complete it: check where traffic is before trying again.`;
  else platform = `The platform was not asked to switch: nothing was done.`;
  const where = whereNow(now, { id: data.targetId, action: data.action });
  const code = 'job_lost';
  const message = endMessage(`${reason} ${platform}`, where);
  await tracker.end(
    'failed',
    code,
    message,
    "Stopped: Switchyard's record of this switch was lost from Redis.",
  );
  await run.audit({ event: 'failed', actor: data.requestedBy, code, message });
  finish(deps, data, 'failed', run.switchStart);
  log.error({ outcome: 'failed', code, err: run.err }, message);
  throw new SwitchFailedError(code, message, 'failed');
}

/** An audit entry of this job: the job's fields plus `entry`. */
function auditEntry(
  deps: ProcessorDeps,
  data: SwitchJobData,
  jobId: string,
  entry: Omit<AuditEntry, 'at' | 'environment' | 'action' | 'planId' | 'jobId' | 'targetId' | 'fromId'>,
): AuditEntry {
  return {
    at: deps.clock.now(),
    environment: data.environment,
    action: data.action,
    planId: data.planId,
    jobId,
    targetId: data.targetId,
    fromId: data.expectedCurrent,
    ...entry,
  };
}

/**
 * The end of a job that stalled more than `MAX_STALLS` times: its workers kept dying or freezing (or
 * losing Redis) mid-switch, so it is not tried again. Whether it switched is unknown: the final state
 * says so, and where the platform says traffic is now. Published, audited and counted like any end.
 */
async function endAfterStalls(
  deps: ProcessorDeps,
  job: Job,
  data: SwitchJobData,
  tracker: Tracker,
  log: Logger,
): Promise<never> {
  const jobId = job.id ?? '';
  // Keep the steps the last attempt published (the chat message shows where it was interrupted).
  const last = progressSchema.safeParse(job.progress);
  if (last.success && last.data.outcome === undefined && last.data.jobId === jobId) {
    tracker.progress = { ...last.data, attempt: tracker.progress.attempt };
  }
  const [now, stored] = await Promise.all([
    deps.platform.snapshot(data.environment).catch(() => undefined),
    storedOperation(deps, jobId),
  ]);
  const op = stored?.ref;
  const opState = op ? await deps.platform.operation(op).catch(() => undefined) : undefined;
  const where = whereNow(now, { id: data.targetId, action: data.action });
  const operation =
    op && opState
      ? ` The platform reports the operation it started (${op.id}) as ${describeOperationState(opState)}.`
      : '';
  const code = 'job_stalled';
  const message = `Gave up on this ${data.action} of ${data.environment} to ${data.targetId}: the worker running it stopped answering ${job.stalledCounter} times (a crash, a freeze or a lost Redis connection), so whether it switched is unknown. Check where traffic is before trying again. ${where}${operation}`;
  await tracker.end('failed', code, message, 'Interrupted: the worker running this step stopped answering.');
  await deps.audit
    ?.append(auditEntry(deps, data, jobId, { event: 'failed', actor: data.requestedBy, code, message }))
    .catch((e: unknown) => log.warn({ err: e }, 'audit append failed'));
  deps.metrics?.jobs.inc({ action: data.action, outcome: 'failed' });
  log.warn({ outcome: 'failed', code, stalls: job.stalledCounter }, message);
  throw new SwitchFailedError(code, message, 'failed');
}

/** Who asked, in the final state of a job whose data does not say it readably (`endUnreadable`). */
const UNKNOWN_REQUESTER: Actor = {
  surface: 'system',
  userId: 'unknown',
  displayName: 'unknown (unreadable job data)',
};

/** What a final state shows for an id the job's data does not say readably (`endUnreadable`). */
const UNREADABLE = '(unreadable)';

/**
 * The end of a job whose data `switchJobSchema` refuses: written by another Switchyard version during a
 * rolling upgrade (a newer bot queues a domain an older worker refuses), or edited by hand. Nothing is
 * switched and no lock is taken, but the end is told like any other: what can still be read of the data
 * (`readableJobData`: the action, the environment, the plan, the chat messages) gives a final `failed`
 * state (code `invalid_input`) naming each field and what was expected, published to the job's messages,
 * audited, counted and logged at error (BullMQ would otherwise fail the job without a word, its chat
 * message staying on "queued"). Without a readable action and environment there is no state a view can
 * show nor an audit stream to write to: it is logged only.
 *
 * "Nothing was done" holds only when the job's operation key holds no operation nor started marker: an
 * earlier attempt of the same job (a newer worker that stalled or was killed mid-switch, this older one
 * taking the job over) may have asked the platform to switch already. Its operation is then asked about
 * and told (done, failed, or still under way and so may still complete); a started marker alone says
 * the switch may still complete. Only read: nothing is switched from here, so nothing is switched twice.
 */
async function endUnreadable(deps: ProcessorDeps, job: Job, error: z.ZodError): Promise<never> {
  const jobId = job.id ?? '';
  const readable = readableJobData(job.data);
  const issues = jobDataIssues(error, job.data);
  const code = RefusalCode.invalidInput;
  const { action, environment } = readable;
  const log = deps.logger.child({ jobId, planId: readable.planId, environment });
  // What an earlier attempt of this job stored (read before the snapshot, so that where traffic is
  // comes after what the platform reports of the operation). Undefined when Redis did not answer.
  const stored = await storedOperation(deps, jobId);
  const ref = stored?.ref;
  const opState = ref ? await deps.platform.operation(ref).catch(() => undefined) : undefined;
  if (action === undefined || environment === undefined) {
    const earlier = earlierSwitch(environment ?? ref?.environment ?? 'its environment', stored, opState);
    const message = `Switch job ${jobId} cannot run: its data is not a switch this version of Switchyard reads (${issues}), and without a readable action and environment its end cannot be shown or audited. ${earlier}`;
    log.error({ code }, message);
    throw new SwitchFailedError(code, message, 'failed');
  }
  const tracker = new Tracker(
    job,
    deps,
    queuedProgress(
      jobId,
      {
        planId: readable.planId ?? '',
        action,
        environment,
        targetId: readable.targetId ?? UNREADABLE,
        expectedCurrent: readable.expectedCurrent ?? UNREADABLE,
        requestedBy: readable.requestedBy ?? UNKNOWN_REQUESTER,
        ...(readable.approvedBy === undefined ? {} : { approvedBy: readable.approvedBy }),
      },
      {
        startedAt: readable.requestedAt ?? job.timestamp,
        attempt: job.attemptsMade + 1,
        updatedAt: deps.clock.now(),
      },
    ),
    readable.messages,
  );
  if (ref) tracker.progress.operationId = ref.id;
  const snapshot = await deps.platform.snapshot(environment).catch(() => undefined);
  // The operation names what the platform was asked; the data's target, when readable, otherwise.
  const switchedTo = ref?.targetId ?? readable.targetId;
  const mayHaveSwitched = stored === undefined || stored.started;
  const where = whereNow(
    snapshot,
    mayHaveSwitched && switchedTo !== undefined ? { id: switchedTo, action } : undefined,
  );
  const message = endMessage(
    `This ${action} of ${environment} cannot run: its job data is not what this version of Switchyard reads (${issues}); another version wrote it (during an upgrade) or it was edited by hand. ${earlierSwitch(environment, stored, opState)}`,
    where,
  );
  await tracker.end(
    'failed',
    code,
    message,
    clipMessage(`The job's data is unreadable: ${issues}.`, STEP_DETAIL_MAX),
  );
  await deps.audit
    ?.append({
      at: deps.clock.now(),
      environment,
      action,
      event: 'failed',
      ...(readable.requestedBy === undefined ? {} : { actor: readable.requestedBy }),
      ...(readable.planId === undefined ? {} : { planId: readable.planId }),
      jobId,
      ...(readable.targetId === undefined ? {} : { targetId: readable.targetId }),
      ...(readable.expectedCurrent === undefined ? {} : { fromId: readable.expectedCurrent }),
      code,
      message,
    })
    .catch((e: unknown) => log.warn({ err: e }, 'audit append failed'));
  deps.metrics?.jobs.inc({ action, outcome: 'failed' });
  log.error({ outcome: 'failed', code }, message);
  throw new SwitchFailedError(code, message, 'failed');
}

/**
 * What `endUnreadable` says of the switch earlier attempts of the job may have asked the platform for:
 * `stored` is what they left under the job's operation key (undefined when Redis did not answer),
 * `opState` what the platform reports of the stored operation (undefined when it did not tell).
 */
function earlierSwitch(
  environment: string,
  stored: StoredOperation | undefined,
  opState: OperationStatus | undefined,
): string {
  const check = 'check where traffic is before trying again.';
  if (stored === undefined)
    return `Whether an earlier attempt of this job asked the platform to switch could not be read from Redis: ${check}`;
  if (!stored.started) return 'Nothing was done.';
  const ref = stored.ref;
  if (ref === undefined)
    return `An earlier attempt of this job asked the platform to switch ${environment} and it may still complete: ${check}`;
  const asked = `An earlier attempt of this job asked the platform to ${ref.action === 'rollback' ? 'roll' : 'promote'} ${environment} ${ref.action === 'rollback' ? 'back ' : ''}to ${ref.targetId}`;
  if (opState === undefined)
    return `${asked} (operation ${ref.id}, whose state the platform did not tell) and it may still complete: ${check}`;
  if (opState.state === 'succeeded')
    return `${asked}, and the platform reports that operation (${ref.id}) done; traffic on it was not verified.`;
  if (opState.state === 'failed' && opState.error?.mayStillComplete !== true)
    return `${asked}, and the platform reports that operation (${ref.id}) as failed${opState.error ? ` (${opState.error.code})` : ''}.`;
  return `${asked}, and the platform reports that operation (${ref.id}) as ${describeOperationState(opState)}: it may still complete, ${check}`;
}

/**
 * The state of the operation an earlier attempt started; undefined when the platform definitely does
 * not know it. Any other fault (5xx, timeout, network, a bug) is rethrown as retryable: the ref is kept,
 * so the operation is never started a second time while it may still run.
 */
async function readOperation(
  deps: ProcessorDeps,
  ref: OperationRef,
  data: SwitchJobData,
): Promise<OperationStatus | undefined> {
  try {
    return await deps.platform.operation(ref);
  } catch (e) {
    const err = asSwitchyardError(e);
    if (operationUnknown(err)) return undefined;
    throw new OperationUnreadError(ref, data.action, err, e);
  }
}

/**
 * `readOperation` could not read the state of the operation an earlier attempt started (a 5xx, a
 * timeout, a network error, a bug): retryable, the ref is kept. Its message (logs) names the raw
 * error; chat gets `failureSentence`'s words, which promise to follow the operation only while an
 * attempt is left to do it. The context keeps the platform's (a Retry-After for the backoff).
 */
class OperationUnreadError extends SyError {
  constructor(
    readonly ref: OperationRef,
    readonly action: SwitchJobData['action'],
    /** What reading it failed with. */
    readonly reason: SwitchyardError,
    cause: unknown,
  ) {
    super(
      reason.retry ? reason.code : 'platform_unavailable',
      `Could not read the state of operation ${ref.id}, which an earlier attempt of this ${action} started (${reason.message}); it is kept and followed once the platform answers, never started twice.`,
      { retry: true, cause, context: { ...reason.context, operation: ref.id } },
    );
  }
}

/**
 * Whether the platform's answer to `operation(ref)` definitely says it cannot tell anything about the
 * operation (the port's contract: `retry: false` means asking again will not help — a 404, the local
 * platform's "unknown operation", a refusal). Retryable faults, Switchyard's own internal errors and
 * a 2xx that did not parse are not definite.
 */
function operationUnknown(err: SwitchyardError): boolean {
  if (err.retry || err.code === 'internal' || err.code === 'redis_unavailable') return false;
  if (err instanceof PlatformHttpError && err.status < 300) return false;
  return true;
}

/**
 * Whether a rollback/promote call that threw certainly started nothing: a refusal (the platform's
 * "no", "operation in progress" included) or a 4xx other than a timeout. After a 5xx, a timeout or a
 * network error the switch may have started.
 */
function definitelyNotStarted(e: unknown): boolean {
  if (e instanceof PlatformHttpError) return e.status >= 400 && e.status < 500 && e.status !== 408;
  if (e instanceof RefusalError) return true;
  return e instanceof SyError && e.code === RefusalCode.operationInProgress;
}

/**
 * Counts the job's end, and its duration from `switchStart` (its first attempt's start: wall-clock
 * time, since that attempt may have run on another host). A clock behind that host's (or set back
 * since) counts no negative duration: zero.
 */
function finish(deps: ProcessorDeps, data: SwitchJobData, outcome: Outcome, switchStart: number): void {
  deps.metrics?.jobs.inc({ action: data.action, outcome });
  deps.metrics?.switchDuration.observe(
    { action: data.action, outcome },
    Math.max(0, deps.clock.now() - switchStart) / 1000,
  );
}

/**
 * Field of the BullMQ job's hash holding when its first attempt took the environment lock (clock ms).
 * On the job itself, so it lives exactly as long as the job: BullMQ keeps it through retries, stalls
 * and hand-backs (it rewrites `processedOn` at every attempt), and removing or replacing the job
 * (same plan, new job: `SwitchQueue.enqueue`) removes it with the hash.
 */
const FIRST_RUN_FIELD = 'syFirstRunAt';

/**
 * Records ARGV[2] as field ARGV[1] of the job's hash KEYS[1] unless an earlier attempt did; returns the
 * recorded value (nil when the job is gone: nothing is created for it).
 */
const FIRST_RUN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
`;

/** What FIRST_RUN answers for a job that exists: the recorded clock ms, as Redis returns it (a string). */
const firstRunSchema = z
  .string()
  .regex(/^\d{1,16}$/)
  .transform(Number);

/**
 * When the job's first attempt took the lock: recorded by this attempt (`attemptStart`) if it is the
 * first. Never later than `attemptStart` (workers' clocks may differ a little), and `attemptStart`
 * itself when Redis fails or holds something else.
 */
async function firstRunStart(deps: ProcessorDeps, jobId: string, attemptStart: number): Promise<number> {
  try {
    const raw = await deps.redis.eval(FIRST_RUN, 1, deps.keys.job(jobId), FIRST_RUN_FIELD, attemptStart);
    const first = firstRunSchema.safeParse(raw);
    return first.success ? Math.min(first.data, attemptStart) : attemptStart;
  } catch {
    return attemptStart;
  }
}

/**
 * What earlier attempts stored under the job's operation key: an operation ref (undefined when none
 * or unreadable), and whether any of them asked the platform to switch (a ref or a started marker).
 */
function parseStored(raw: string | undefined): StoredOperation {
  if (!raw) return { ref: undefined, started: false, unanswered: false };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ref: undefined, started: false, unanswered: false };
  }
  const parsed = operationRefSchema.safeParse(json);
  if (parsed.success) {
    const { askedBefore, liveSince, ...ref } = parsed.data;
    return {
      ref,
      started: true,
      unanswered: askedBefore === true,
      ...(askedBefore === true && liveSince !== undefined ? { liveSince } : {}),
    };
  }
  const marker = startedMarkerSchema.safeParse(json);
  if (!marker.success) return { ref: undefined, started: false, unanswered: false };
  const { liveSince } = marker.data;
  return {
    ref: undefined,
    started: true,
    unanswered: true,
    ...(liveSince === undefined ? {} : { liveSince }),
  };
}

/**
 * What earlier attempts stored under job `jobId`'s operation key (`parseStored`); undefined when Redis
 * did not answer.
 */
function storedOperation(deps: ProcessorDeps, jobId: string): Promise<StoredOperation | undefined> {
  return deps.redis.get(deps.keys.operation(jobId)).then(
    (raw) => parseStored(raw ?? undefined),
    () => undefined,
  );
}

/** Follows the platform operation until it succeeds; reflects `reactivating`/`switching` as steps. */
async function follow(
  deps: ProcessorDeps,
  ref: OperationRef,
  tracker: Tracker,
  signal: AbortSignal,
  data: SwitchJobData,
): Promise<void> {
  // Measured on the monotonic clock: a step of the wall clock (an NTP correction, a VM resumed) is no
  // time the platform took.
  const deadline = monotonicNow(deps.clock) + deps.operationTimeoutMs;
  for (;;) {
    signal.throwIfAborted();
    const status = await deps.platform.operation(ref);
    const current = tracker.running()?.step;
    switch (status.state) {
      case 'pending':
        if (current !== 'reactivating' && current !== 'switching') {
          // Not started yet: a step an earlier run was on (or lost track of) goes on (a reactivation is
          // not done).
          tracker.start(tracker.wasOn('reactivating') ? 'reactivating' : 'switching');
          tracker.post();
        }
        break;
      case 'reactivating':
        if (current !== 'reactivating' && !tracker.has('switching')) {
          tracker.start(
            'reactivating',
            `${data.targetId} is in standby; reactivating it takes a little longer.`,
          );
          tracker.post();
        }
        break;
      case 'switching':
        if (current !== 'switching') {
          tracker.start('switching');
          tracker.post();
        }
        break;
      case 'succeeded':
        // Publish `switching` even when it began and ended between two polls: every switch shows it.
        if (current !== 'switching') {
          tracker.start('switching');
          tracker.post();
        }
        return;
      case 'failed':
        throw operationFailed(status, ref, data);
      default:
        return assertNeverState(status.state);
    }
    if (monotonicNow(deps.clock) >= deadline) {
      throw new SyError(
        'platform_timeout',
        `The platform's ${data.action} of ${data.environment} (operation ${ref.id}) did not finish within ${Math.round(deps.operationTimeoutMs / 1000)}s.`,
        { retry: true, context: { operation: ref.id } },
      );
    }
    await deps.clock.sleep(deps.verify.intervalMs, signal);
  }
}

/**
 * The end of a switch whose operation the platform reports `failed`. A failure that passes (the platform
 * restarted mid-way; nothing was switched) is retried: the next attempt finds this operation failed and
 * decides afresh. One that is not definitive (`mayStillComplete`: the adapter stopped waiting while the
 * platform still had the switch pending or under way) is not retried, since a retry would start another
 * switch: the job ends failed saying it may still complete (`context.mayStillComplete`).
 */
function operationFailed(status: OperationStatus, ref: OperationRef, data: SwitchJobData): SyError {
  const error = status.error;
  // The platform's sentence with its code after it, ended once ("… on Vercel (operation_timeout).").
  const said = (error?.message ?? 'no reason given').trim().replace(/\.$/, '');
  const reason = `${said}${error?.code ? ` (${error.code})` : ''}`;
  const unfinished = error?.mayStillComplete === true;
  return new SyError(
    'platform_operation_failed',
    unfinished
      ? `The platform did not finish the ${data.action} of ${data.environment} to ${data.targetId} in time: ${reason}.`
      : `The platform could not ${data.action} ${data.environment} to ${data.targetId}: ${reason}.`,
    {
      retry: !unfinished && error?.retryable === true,
      context: {
        operation: ref.id,
        platformCode: error?.code,
        ...(unfinished ? { mayStillComplete: true } : {}),
      },
    },
  );
}

/** Whether `err` is an operation failure the platform may still turn into a switch (`operationFailed`). */
function unfinishedOperation(err: SwitchyardError): boolean {
  return err.code === 'platform_operation_failed' && err.context.mayStillComplete === true;
}

/** An operation's state for a final message: a timed-out one still pending or under way is not "failed". */
function describeOperationState(status: OperationStatus): string {
  if (status.state === 'failed' && status.error?.mayStillComplete === true)
    return `not finished${status.error.code ? ` (${status.error.code})` : ''}`;
  return status.state;
}

function assertNeverState(state: never): never {
  throw new SyError('internal', `unknown operation state ${JSON.stringify(state)}`);
}

/**
 * How often verification reads the platform's snapshot again, in rounds that did not find every domain
 * on the target (see `verifyTraffic`): at the default 500 ms interval, every 2 s.
 */
const VERIFY_RECHECK_ROUNDS = 4;

/**
 * Probes every affected domain, every round, until one whole round finds each of them answering from
 * the target, or the timeout passes. A domain that answered the target once is probed again: one that
 * flaps back to the old deployment (edges still propagating) or stops answering is not counted as moved.
 * The traffic returned is that last full round's, with the newest snapshot read meanwhile.
 *
 * A switch made outside this job while it verifies (the platform's dashboard or API, another tool)
 * ends verification at once instead of at its timeout: the platform's snapshot is read while the first
 * round probes, again every `VERIFY_RECHECK_ROUNDS` rounds, and at once when a round's answers change
 * to include a deployment that is neither the target nor the source (a switch still propagating shows
 * only those two). When the environment's current deployment is then a third one, or the source again
 * after a read during verification showed the target (before that, a source may be the platform's
 * state lagging behind the switch it reported done), the job ends with `plan_stale` saying both facts
 * (`overtakenMessage`). A platform's live history showing the target live since this job's operation
 * started (`operationStart`), then another deployment, counts as such a read: a retry whose operation
 * was done before it looked never sees the target current. A read that fails is skipped: verification
 * goes on.
 */
async function verifyTraffic(
  deps: ProcessorDeps,
  data: SwitchJobData,
  tracker: Tracker,
  signal: AbortSignal,
  operationStart: number | undefined,
): Promise<{ traffic: Traffic[]; snapshot: EnvironmentSnapshot | undefined }> {
  if (data.domains.length === 0) {
    const cur = tracker.running();
    if (cur) cur.detail = 'No domain moves: nothing to verify.';
    return { traffic: [], snapshot: undefined };
  }
  const read = () => deps.platform.snapshot(data.environment).catch(() => undefined);
  // The first read runs while the first round probes (its answer also serves the final message).
  let first: Promise<EnvironmentSnapshot | undefined> | undefined = read();
  let latest: EnvironmentSnapshot | undefined;
  // A read during verification showed the target live: the switch is in the platform's state.
  let landed = false;
  // On the monotonic clock, as `follow`'s: a wall-clock step is no time the domains took.
  const deadline = monotonicNow(deps.clock) + deps.verify.timeoutMs;
  let lastKey = '';
  for (let round = 1; ; round++) {
    signal.throwIfAborted();
    let routes: Map<string, string | undefined> | undefined;
    if (!deps.platform.probe) {
      const table = await deps.platform.routing(data.environment);
      routes = new Map(table.map((r) => [r.hostname, r.deploymentId]));
    }
    const traffic = await Promise.all(
      data.domains.map(async (hostname): Promise<Traffic> => {
        let deploymentId: string | undefined;
        if (routes) deploymentId = routes.get(hostname);
        else {
          const probe = deps.platform.probe;
          const r = probe
            ? await probe.call(deps.platform, hostname, signal).catch(() => undefined)
            : undefined;
          deploymentId = r?.deploymentId;
        }
        return {
          hostname,
          ok: deploymentId === data.targetId,
          ...(deploymentId === undefined ? {} : { deploymentId }),
        };
      }),
    );
    const okCount = traffic.filter((t) => t.ok).length;
    if (okCount === traffic.length) return { traffic, snapshot: (await first) ?? latest };
    const key = JSON.stringify(traffic);
    const third = traffic.some(
      (t) =>
        t.deploymentId !== undefined &&
        t.deploymentId !== data.targetId &&
        t.deploymentId !== data.expectedCurrent,
    );
    if (first || round % VERIFY_RECHECK_ROUNDS === 0 || (third && key !== lastKey)) {
      const snap = await (first ?? read());
      first = undefined;
      if (snap) {
        latest = snap;
        const current = snap.environment.currentDeploymentId;
        // The platform's live history (when it keeps one) may show the target live after this job's
        // operation started and another deployment after it: the switch landed before this run looked
        // (a retry whose stored operation the platform reports done, another job having switched back
        // while it waited), so a source found now is no lag.
        if (
          operationStart !== undefined &&
          current !== undefined &&
          snap.liveHistory.at(-1)?.deploymentId === current &&
          liveThenReplaced(data, snap.liveHistory, firstSince(snap.liveHistory, operationStart)) >= 0
        )
          landed = true;
        const back = current === data.expectedCurrent && current !== data.targetId;
        if (current !== undefined && current !== data.targetId && (!back || landed)) {
          throw overtakenError(data, current, overtakenMessage(data, snap, current), traffic);
        }
        if (current === data.targetId) landed = true;
      }
    }
    if (key !== lastKey) {
      lastKey = key;
      tracker.progress.traffic = traffic;
      const cur = tracker.running();
      if (cur)
        cur.detail = routes
          ? `The platform routes ${okCount} of ${domainCount(traffic.length)} to ${data.targetId}.`
          : `${okCount} of ${domainCount(traffic.length)} answer${okCount === 1 ? 's' : ''} from ${data.targetId}.`;
      tracker.post();
    }
    const left = deadline - monotonicNow(deps.clock);
    if (left <= 0) {
      const off = traffic.filter((t) => !t.ok);
      const after = Math.round(deps.verify.timeoutMs / 1000);
      throw new VerifyTimeoutError(
        routes
          ? `The platform reports the ${data.action} done, but after ${after}s its routing still sends ${off.length} of ${domainCount(traffic.length)} elsewhere than ${data.targetId}.`
          : `The platform reports the ${data.action} done, but after ${after}s ${off.length} of ${domainCount(traffic.length)} ${off.length === 1 ? 'does' : 'do'} not answer from ${data.targetId}.`,
        `Not on ${data.targetId}: ${nameTraffic(off)}.`,
        traffic,
      );
    }
    await deps.clock.sleep(Math.min(deps.verify.intervalMs, left), signal);
  }
}

/**
 * The end of a job whose plan another switch (or a deploy) overtook, `current` now serving, as `message`
 * says: `plan_stale`, with what the plan expected and what serves instead (and, once verifying read it,
 * where the domains answer from, `traffic`) for the audit and the views.
 */
function overtakenError(
  data: SwitchJobData,
  current: string,
  message: string,
  traffic?: readonly Traffic[],
): RefusalError {
  return new RefusalError({
    code: RefusalCode.planStale,
    message,
    context: {
      environment: data.environment,
      expectedCurrent: data.expectedCurrent,
      current,
      ...(traffic === undefined ? {} : { traffic }),
    },
  });
}

/**
 * The sentence of a switch overtaken while verifying: this job's switch landed, then `current` went
 * live through another switch (or a deploy), as the platform's live history tells when it keeps one.
 */
function overtakenMessage(data: SwitchJobData, snapshot: EnvironmentSnapshot, current: string): string {
  const verb = data.action === 'rollback' ? 'Rolled back' : 'Promoted';
  // The history's newest entry, when it put `current` live after this job's switch put the target live.
  const history = snapshot.liveHistory;
  const newest = history.at(-1);
  const ours = history.findLastIndex((h) => ownEntry(data, h));
  const entry =
    newest?.deploymentId === current && ours >= 0 && ours < history.length - 1 ? newest : undefined;
  return `${verb} ${data.environment} to ${data.targetId}; then, before traffic on it was verified, ${movedOn(data, current, entry)}. This job does nothing more.`;
}

/**
 * How traffic left this job's target for `to`: through `entry` of the platform's live history (the one
 * that put `to` live) when known, else through another switch.
 */
function movedOn(data: SwitchJobData, to: string, entry: LiveEntry | undefined): string {
  const moved =
    to === data.expectedCurrent
      ? `traffic went back to ${to} (the deployment this ${data.action} moved it from)`
      : `traffic moved on to ${to}`;
  return `${moved} ${throughEntry(data, entry)}`;
}

/** How a deployment went live, not through this job: through `entry` of the live history when known. */
function throughEntry(data: SwitchJobData, entry: LiveEntry | undefined): string {
  return entry === undefined
    ? 'through another switch, not this one'
    : entry.via === 'deploy'
      ? `through an automatic deploy, not this ${data.action}`
      : `through another switch (a ${entry.via}${entry.by === undefined ? '' : ` by ${entry.by}`}), not this one`;
}

/**
 * Where the live history shows this job's target put live by this action at index `from` or later,
 * with another deployment live after it: the index of that entry (the latest such), or -1. A platform
 * that keeps no live history (Unkey, Vercel) never tells: -1.
 */
function liveThenReplaced(data: SwitchJobData, history: readonly LiveEntry[], from: number): number {
  const i = history.findLastIndex((h) => ownEntry(data, h));
  return i >= from && i < history.length - 1 ? i : -1;
}

/**
 * Whether `entry` of the live history can be this job's switch: its target, put live by its action,
 * asked for by this job. The local platform records the id of the job that asked (`jobId`, sent with
 * the request as `jobIdForPlan(planId)`, the job's id): an entry with another id is another job's
 * switch, even one by a person of the same display name. An entry without it (an older state file, a
 * platform that records only a name) is told by who asked (`by`: the request's `requestedBy`, this
 * job's requester's display name), so an entry by someone else is never this job's; one without `by`
 * either cannot be told apart: it counts.
 */
function ownEntry(data: SwitchJobData, entry: LiveEntry): boolean {
  if (entry.deploymentId !== data.targetId || entry.via !== data.action) return false;
  if (entry.jobId !== undefined) return entry.jobId === jobIdForPlan(data.planId);
  return entry.by === undefined || entry.by === data.requestedBy.displayName;
}

/**
 * Whose switch the platform's live history shows live now, when its newest entry put the job's target
 * live after the job first asked (`historyBound`) and the target is current: `own` when it is the
 * job's (`ownEntry`): an earlier request of the job that got no answer landed, whatever changed since
 * without a history entry (automatic deploys resumed on the target: no longer rolled back, which
 * `isAlreadyDone` would not take for a rollback's result); `other` when someone else's switch put it
 * there: the environment looks as the job would leave it, but not by its doing. Undefined otherwise,
 * and always for a snapshot of another project than the job's.
 */
function switchLiveNow(
  data: SwitchJobData,
  snapshot: EnvironmentSnapshot,
  liveSince: number | undefined,
): 'own' | 'other' | undefined {
  if (snapshot.project.id !== data.projectId) return undefined;
  if (snapshot.environment.currentDeploymentId !== data.targetId) return undefined;
  const history = snapshot.liveHistory;
  const newest = history.at(-1);
  if (newest?.deploymentId !== data.targetId) return undefined;
  if (history.length - 1 < historyBound(data, history, liveSince)) return undefined;
  return ownEntry(data, newest) ? 'own' : 'other';
}

/** The index of the first entry of the live history that went live at or after `at` (platform time). */
function firstSince(history: readonly LiveEntry[], at: number): number {
  const i = history.findIndex((h) => h.since >= at);
  return i < 0 ? history.length : i;
}

/**
 * The first index of the live history at which a switch of this job can be. With `liveSince` (stored
 * with its first request: when the deployment then live went live, platform time): right after that
 * entry, the planned current deployment's, so the platform's clock is compared only with itself (when
 * the bounded history no longer holds it, every entry kept is newer). Without it (a marker written by
 * an earlier version), entries from the job's `requestedAt` on: the requesting host's clock against the
 * platform's, which a skew between the two can mislead.
 */
function historyBound(
  data: SwitchJobData,
  history: readonly LiveEntry[],
  liveSince: number | undefined,
): number {
  if (liveSince === undefined) return firstSince(history, data.requestedAt);
  const planned = history.findIndex((h) => h.deploymentId === data.expectedCurrent && h.since === liveSince);
  return planned >= 0 ? planned + 1 : firstSince(history, liveSince);
}

/** When the current deployment went live by the platform's live history (its newest entry), if kept. */
function liveSinceNow(snapshot: EnvironmentSnapshot): number | undefined {
  const newest = snapshot.liveHistory.at(-1);
  return newest !== undefined && newest.deploymentId === snapshot.environment.currentDeploymentId
    ? newest.since
    : undefined;
}

/** The `liveSince` field of a stored marker or ref, when known (exactOptionalPropertyTypes). */
function sinceField(liveSince: number | undefined): { liveSince?: number } {
  return liveSince === undefined ? {} : { liveSince };
}

/** The opening of the end of a job whose earlier request got no answer. */
function askedClause(data: SwitchJobData): string {
  return `An earlier attempt of this ${data.action} asked the platform to switch ${data.environment} to ${data.targetId}, and no answer to that request reached this job (it was lost, or that attempt's worker stopped first)`;
}

/**
 * The end of a job whose earlier attempt asked the platform to switch and got no answer (lost on the
 * way, or that attempt's worker stopped first), when this attempt finds the plan overtaken (`refusal`,
 * what `checkFresh` says changed): the switch may have taken effect before traffic moved on. On a
 * platform that keeps a live history, whether the target went live since the job asked (`liveSince`:
 * see historyBound), and what replaced it, as far as that history tells.
 */
function askedThenMovedMessage(
  data: SwitchJobData,
  snapshot: EnvironmentSnapshot,
  liveSince: number | undefined,
  refusal: string,
  trafficMoved: boolean,
): string {
  const asked = askedClause(data);
  if (!trafficMoved)
    return `${asked}; the switch may have taken effect, but the plan no longer holds: ${refusal} This job does nothing more.`;
  const history = snapshot.liveHistory;
  if (history.length === 0)
    return `${asked}; the switch may have taken effect, but traffic has moved since: ${refusal} This job does nothing more.`;
  const from = historyBound(data, history, liveSince);
  const ours = liveThenReplaced(data, history, from);
  const next = history[ours + 1];
  if (ours < 0 || next === undefined) {
    // The target may have gone live since through someone else's switch (a person on the dashboard):
    // said as such, not as this job's.
    const other = history.findLast(
      (h, i) => i >= from && h.deploymentId === data.targetId && !ownEntry(data, h),
    );
    const how =
      other === undefined
        ? `${data.targetId} has not gone live through a ${data.action} since this one was asked for`
        : `${data.targetId} went live since only ${throughEntry(data, other)}`;
    return `${asked}. As far as the platform's live history tells, the switch did not take effect: ${how}, and traffic has moved since: ${refusal} This job does nothing more.`;
  }
  return `${asked}. As far as the platform's live history tells, the switch took effect: ${data.targetId} went live, then ${movedOn(data, next.deploymentId, next)}. This job does nothing more.`;
}

/**
 * The end of a job whose earlier request got no answer, when the plan holds again (the planned current
 * deployment is live) but the platform's live history shows that request took effect and another
 * switch then moved traffic back: undefined when the history does not show it (or there is none). A
 * promote that only resumes automatic deploys puts nothing in the history: never told.
 */
function askedThenUndoneMessage(
  data: SwitchJobData,
  snapshot: EnvironmentSnapshot,
  liveSince: number | undefined,
): string | undefined {
  if (data.targetId === data.expectedCurrent) return undefined;
  const history = snapshot.liveHistory;
  if (liveThenReplaced(data, history, historyBound(data, history, liveSince)) < 0) return undefined;
  // The entry that put the planned deployment back: the newest, current one.
  const newest = history.at(-1);
  const back = newest?.deploymentId === data.expectedCurrent ? newest : undefined;
  return `${askedClause(data)}. As far as the platform's live history tells, the switch took effect: ${data.targetId} went live, then ${movedOn(data, data.expectedCurrent, back)}; it is not asked for again. This job does nothing more.`;
}

/** "1 domain", "3 domains". */
function domainCount(n: number): string {
  return `${n} ${n === 1 ? 'domain' : 'domains'}`;
}

/** "both domains" for two, else "all 3 domains". */
function allDomains(n: number): string {
  return n === 2 ? 'both domains' : `all ${n} domains`;
}

/**
 * The success sentence (`message`, for the audit log and the logs). Its list of domains names a few
 * and counts the rest (`… and 295 more`: the view's domain list has all of them), so the sentence
 * stays whole. `note` is the same without the domains and the switch the chat message's title and
 * list already say (progress `note`).
 */
function successMessage(
  data: SwitchJobData,
  traffic: readonly Traffic[],
  snapshot: EnvironmentSnapshot,
  probed: boolean,
  opts: { readonly switchedEarlier?: boolean } = {},
): { message: string; note: string } {
  const verb = data.action === 'rollback' ? 'Rolled back' : 'Promoted';
  // A rollback an earlier attempt made may have been followed by someone resuming automatic deploys
  // on its target (no traffic moves, so it is still this job's switch): the environment is no longer
  // rolled back, and "paused" would be false. Read from the snapshot only then: this attempt's own
  // rollback is just done, and some platforms' state may lag behind it.
  // Only on a platform that keeps a live history (the local one): elsewhere (Unkey, Vercel) the
  // rolled-back flag may not show yet a rollback that just finished, even an earlier attempt's.
  const resumedSince =
    opts.switchedEarlier === true &&
    snapshot.liveHistory.length > 0 &&
    data.action === 'rollback' &&
    !snapshot.environment.rolledBack &&
    snapshot.environment.currentDeploymentId === data.targetId;
  const after = resumedSince
    ? `Automatic deploys were resumed since (${data.environment} is no longer rolled back).`
    : data.action === 'rollback'
      ? 'Automatic deploys are paused until a deployment is promoted.'
      : 'Automatic deploys resume with the next successful deployment.';
  if (traffic.length === 0) {
    // Only a promote of the current deployment (it resumes automatic deploys) leaves the same one
    // live; any other switch without a domain to move still made its target the current deployment.
    const note =
      data.targetId === data.expectedCurrent
        ? `${data.targetId} stays live and no domain moved. ${after}`
        : `${data.targetId} is now the current deployment; no domain moved (${data.environment} has no domain that follows it). ${after}`;
    return { message: `${verb} ${data.environment}: ${note}`, note };
  }
  const where =
    snapshot.environment.currentDeploymentId === data.targetId ? '' : ` ${whereTraffic(snapshot)}`;
  // Said as checked: answered by the target (probed), or routed to it by the platform's own routing
  // table (a platform without a probe: no request reached the domains).
  const checked = probed
    ? traffic.length === 1
      ? 'its 1 domain answers from it'
      : `${allDomains(traffic.length)} answer from it`
    : traffic.length === 1
      ? 'the platform routes its 1 domain to it'
      : `the platform routes ${allDomains(traffic.length)} to it`;
  return {
    message: `${verb} ${data.environment} to ${data.targetId}: ${checked} (${nameTraffic(traffic)}). ${after}${where}`,
    note: `${checked.charAt(0).toUpperCase()}${checked.slice(1)}. ${after}${where}`,
  };
}
