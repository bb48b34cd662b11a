/**
 * The shared shape of a switch's progress: what jobs publish (BullMQ job progress and the Reporter
 * port) and what views render (Slack, Discord, console). Defined once here so both sides agree.
 */
import { z } from 'zod';

export const StepName = {
  queued: 'queued',
  validating: 'validating',
  reactivating: 'reactivating',
  switching: 'switching',
  verifying: 'verifying',
  done: 'done',
} as const;
export type StepName = (typeof StepName)[keyof typeof StepName];

/**
 * The steps a platform operation goes through: what a job follows on the platform, and what tells a
 * view whether its switch landed.
 */
export function platformStep(step: StepName): boolean {
  return step === 'reactivating' || step === 'switching';
}

export const Surface = { slack: 'slack', discord: 'discord', console: 'console' } as const;
export type Surface = (typeof Surface)[keyof typeof Surface];

/** A person acting through a chat surface. */
export const actorSchema = z.object({
  surface: z.enum(['slack', 'discord', 'console', 'system']),
  userId: z.string().min(1),
  displayName: z.string().min(1),
  /**
   * Discord only: the user's unique username (unique across Discord since its 2023 username change),
   * unlike `displayName`, the server nickname any member sets for themselves. Discord renders a `<@id>`
   * mention with that nickname, so messages add the username wherever it differs from the display name
   * (src/views/format.ts `person`). Optional: actors recorded before it (and other surfaces) have none.
   */
  username: z.string().min(1).optional(),
});
export type Actor = z.infer<typeof actorSchema>;

/**
 * The memberships that let a person act at their click: those of their Slack user groups (or Discord
 * roles) that were on the environment's allow list then. Stored with the click (the plan record's
 * `confirmedVia`/`approvedVia`, a switch job's `grants`) because a stored actor carries no
 * memberships: a later check (an approval, the worker judging a queued switch) can then tell whether
 * what let them in is still listed. A person let in by their user id alone has none.
 */
export const grantSchema = z.object({
  groups: z.array(z.string().min(1)).max(1000).exactOptional(),
  roles: z.array(z.string().min(1)).max(1000).exactOptional(),
});
export type Grant = z.infer<typeof grantSchema>;

/** Where a chat message lives, so progress can edit it in place. */
export const messageRefSchema = z.object({
  surface: z.enum(['slack', 'discord', 'console']),
  channel: z.string().min(1),
  /** Slack `ts`, Discord message id, console message id. */
  messageId: z.string().min(1),
  /** Slack thread_ts / Discord thread when the message is threaded. */
  threadId: z.string().min(1).optional(),
});
export type MessageRef = z.infer<typeof messageRefSchema>;

export const stepRecordSchema = z.object({
  step: z.enum(['queued', 'validating', 'reactivating', 'switching', 'verifying', 'done']),
  state: z.enum(['running', 'done', 'failed', 'skipped']),
  /** Unix ms. */
  startedAt: z.number(),
  endedAt: z.number().optional(),
  detail: z.string().optional(),
  /**
   * Why a failed `reactivating`/`switching` step failed, in an attempt that is retried: what a later
   * attempt reads to tell whether the platform may still have done it (`unanswered`: the switch
   * request got no usable answer, a 408, a 5xx, none at all; `refused`: the platform said no to it;
   * `operationFailed`: the platform reports its operation failed; `lostTrack`: any other fault, the
   * operation not followed to its end). Optional: steps written by earlier workers have none.
   */
  failure: z.enum(['unanswered', 'refused', 'operationFailed', 'lostTrack']).exactOptional(),
});
export type StepRecord = z.infer<typeof stepRecordSchema>;
export type StepFailure = NonNullable<StepRecord['failure']>;

export const outcomeSchema = z.enum(['succeeded', 'failed', 'stale', 'refused', 'cancelled']);
export type Outcome = z.infer<typeof outcomeSchema>;

/** Per-domain result of traffic verification: which deployment answered. */
export const trafficSchema = z.object({
  hostname: z.string(),
  deploymentId: z.string().optional(),
  ok: z.boolean(),
});
export type Traffic = z.infer<typeof trafficSchema>;

/** One progress snapshot of a switch job. Every update carries the whole state (idempotent renders). */
export const progressSchema = z.object({
  jobId: z.string(),
  planId: z.string(),
  action: z.enum(['rollback', 'promote']),
  environment: z.string(),
  targetId: z.string(),
  fromId: z.string(),
  requestedBy: actorSchema,
  approvedBy: actorSchema.optional(),
  steps: z.array(stepRecordSchema),
  /** Set once the job has ended. */
  outcome: outcomeSchema.optional(),
  /** Human sentence for the end state: where traffic is now and what to do next. */
  message: z.string().optional(),
  /**
   * On success, what the final chat message says under "Traffic is on …": `message` without the
   * domains it names (the view lists every one) nor the switch the title says. Optional: progress
   * published before it has none (views then word the end themselves).
   */
  note: z.string().optional(),
  /** Where each affected domain's traffic actually is (verification results). */
  traffic: z.array(trafficSchema).default([]),
  /** Refusal or error code when the outcome is not `succeeded`. */
  code: z.string().optional(),
  attempt: z.number().int().default(1),
  /** The platform operation carrying out the switch, once started (recovered jobs follow it). */
  operationId: z.string().optional(),
  /**
   * Whether the target was in standby when the worker validated the plan, i.e. whether the
   * `reactivating` step applies; unset until then (and in progress published before this field).
   * Views show the reactivation step only when it applies (see src/views/model.ts).
   */
  targetStandby: z.boolean().optional(),
  /**
   * Whether the job's own switch is known to have landed: the platform reported its operation done,
   * or found its target live as this job's (jobs/switch-processor.ts). Set once known, and on an end
   * overtaken by another switch (`failed`, `plan_stale`): false there when only an earlier request
   * that got no answer may have switched. Views title such an end "done, then overtaken" only when
   * true. Optional: progress published before this field has none (views then read the steps).
   */
  switchLanded: z.boolean().optional(),
  updatedAt: z.number(),
});
export type Progress = z.infer<typeof progressSchema>;

/**
 * Whether a job's progress is its own (its worker reported beyond the `queued` a reader synthesizes
 * for a job that has not started), or its end: from then on, a click's "Confirmed…" view would cover it.
 */
export function progressReported(progress: Progress): boolean {
  return (
    progress.outcome !== undefined || progress.steps.length > 1 || progress.steps[0]?.detail !== undefined
  );
}

/**
 * The stamp that orders a state among a message's edits: its `updatedAt`, or 0 for a state its worker
 * did not report (the `queued` a reader synthesizes for a job not taken yet, stamped by the process
 * that queued the job, on another clock than the worker's), so that the worker's states all come after.
 */
export function progressStamp(progress: Progress): number {
  return progressReported(progress) ? progress.updatedAt : 0;
}

/**
 * The Reporter port: how a job's progress reaches chat. Each chat surface implements it by editing
 * its original message(s); jobs never import a chat SDK. `messages` are the refs of this surface only
 * (a composite reporter routes by `surface`). Implementations must not throw on chat API failures
 * that should not fail the switch; they log and count them instead.
 */
export interface Reporter {
  report(progress: Progress, messages: readonly MessageRef[]): Promise<void>;
  /**
   * Resolves once no edit is queued or in flight any more: a report may resolve before its edit went
   * out (a surface bounds how long a switch waits for it), and a worker shutting down calls this, within
   * its shutdown timeout, so that such an edit is not lost at exit. Optional: a reporter that never
   * leaves work behind need not have it.
   */
  flush?(): Promise<void>;
}
