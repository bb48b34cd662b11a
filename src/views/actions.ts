/**
 * The button/action id scheme shared by every chat surface (Slack `action_id`/`value`, Discord
 * `custom_id`, console button ids). A button carries only a reference: a plan id (the plan itself lives
 * in Redis) or, for the row buttons of `/deployments` and notices, an environment and a deployment id
 * from which a fresh plan is built on click. Ids are at most 100 characters (Discord's `custom_id`
 * limit, the tightest of the three) and are parsed with zod like any other outside input.
 *
 * Wire format (version 1): `sy1:<kind>:<ref>`
 * - plan kinds: `sy1:confirm:plan_0123abcd…`
 * - deployment kinds: `sy1:rollback_to:<environment>:<deploymentId>`
 */
import { z } from 'zod';
import { ok, RefusalCode, type Result, refuse } from '../domain/result.js';
import { SwitchyardError } from '../errors.js';

/** Discord's `custom_id` limit; Slack allows 255 (`action_id`) and 2000 (`value`). */
export const MAX_ACTION_ID_LENGTH = 100;

/** Prefix of every Switchyard action id; the digit is the format version. */
export const ACTION_PREFIX = 'sy1';

/** Kinds whose ref is a plan id. */
export const PlanActionKind = {
  /** Confirm the plan (the requester's click). */
  confirm: 'confirm',
  /** Cancel the pending or awaiting-approval plan. */
  cancel: 'cancel',
  /** Second person approves (two-person rule). */
  approve: 'approve',
  /** Dismiss an alert suggestion. */
  dismiss: 'dismiss',
  /** Make a fresh plan for the same action after a stale one. */
  replan: 'replan',
} as const;
export type PlanActionKind = (typeof PlanActionKind)[keyof typeof PlanActionKind];

/** Kinds whose ref is an environment and a deployment id (a plan is built on click). */
export const DeploymentActionKind = {
  /** Plan a rollback of the environment to this deployment. */
  rollbackTo: 'rollback_to',
  /** Plan a promote of this deployment (also "resume automatic deploys" on the current one). */
  promote: 'promote',
} as const;
export type DeploymentActionKind = (typeof DeploymentActionKind)[keyof typeof DeploymentActionKind];

/** Every action kind. */
export type ActionKind = PlanActionKind | DeploymentActionKind;

/** Reference carried by deployment kinds. */
export interface DeploymentActionRef {
  readonly environment: string;
  readonly deploymentId: string;
}

/** A decoded button action. */
export type Action =
  | { readonly kind: PlanActionKind; readonly ref: string }
  | { readonly kind: DeploymentActionKind; readonly ref: DeploymentActionRef };

const PLAN_KINDS = Object.values(PlanActionKind);
const DEPLOYMENT_KINDS = Object.values(DeploymentActionKind);
const ALL_KINDS: readonly ActionKind[] = [...PLAN_KINDS, ...DEPLOYMENT_KINDS];

/** Characters allowed in a ref part: ids and slugs as platforms issue them, never the separator. */
const PART = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const planRefSchema = z
  .string()
  .regex(/^plan_[0-9a-f]{8,64}$/, 'expected a plan id such as plan_0123abcd (plan_ followed by hex)');
const partSchema = (what: string) =>
  z
    .string()
    .min(1, `expected a non-empty ${what}`)
    .regex(
      PART,
      `expected only letters, digits, "_", "." or "-" in the ${what}, starting with a letter or digit`,
    );

const planActionSchema = z.object({
  kind: z.enum(PLAN_KINDS as [PlanActionKind, ...PlanActionKind[]]),
  ref: planRefSchema,
});
const deploymentActionSchema = z.object({
  kind: z.enum(DEPLOYMENT_KINDS as [DeploymentActionKind, ...DeploymentActionKind[]]),
  ref: z.object({ environment: partSchema('environment'), deploymentId: partSchema('deployment id') }),
});
const actionSchema = z.union([planActionSchema, deploymentActionSchema]);

function isPlanKind(kind: string): kind is PlanActionKind {
  return (PLAN_KINDS as readonly string[]).includes(kind);
}

function isDeploymentKind(kind: string): kind is DeploymentActionKind {
  return (DEPLOYMENT_KINDS as readonly string[]).includes(kind);
}

function serialize(action: Action): string {
  const ref =
    typeof action.ref === 'string' ? action.ref : `${action.ref.environment}:${action.ref.deploymentId}`;
  return `${ACTION_PREFIX}:${action.kind}:${ref}`;
}

function clip(text: string, max = 60): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function zodMessage(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      return path === '' ? i.message : `${path}: ${i.message}`;
    })
    .join('; ');
}

/**
 * Encodes an action as an id of at most 100 characters, or says why it cannot (a ref with characters
 * outside the scheme, or ids too long to fit). Views use this form so one odd id never breaks a message.
 */
export function tryEncodeAction(action: Action): Result<string> {
  const parsed = actionSchema.safeParse(action);
  if (!parsed.success) {
    return refuse(
      RefusalCode.invalidInput,
      `Cannot make a button for ${action.kind}: ${zodMessage(parsed.error)}.`,
      {
        kind: action.kind,
      },
    );
  }
  const id = serialize(action);
  if (id.length > MAX_ACTION_ID_LENGTH) {
    return refuse(
      RefusalCode.invalidInput,
      `Cannot make a button for ${action.kind}: the id would be ${id.length} characters, over the limit of ${MAX_ACTION_ID_LENGTH}.`,
      { kind: action.kind, length: id.length },
    );
  }
  return ok(id);
}

/**
 * Encodes an action as a button id (≤ 100 characters). Throws a SwitchyardError (`invalid_input`) when
 * the ref does not fit the scheme: that is a programming or platform-data fault, not user input.
 */
export function encodeAction(action: Action): string {
  const r = tryEncodeAction(action);
  if (!r.ok)
    throw new SwitchyardError(r.refusal.code, r.refusal.message, { context: { ...r.refusal.context } });
  return r.value;
}

/**
 * Parses a button id received from a chat platform (untrusted). Never throws; a malformed or oversized
 * id is refused with `invalid_input` and a message saying what was expected.
 */
export function parseAction(text: unknown): Result<Action> {
  const expected = `expected "${ACTION_PREFIX}:<kind>:<ref>" with kind one of ${ALL_KINDS.join(', ')}`;
  const str = z
    .string({ error: 'expected a string' })
    .max(MAX_ACTION_ID_LENGTH, `expected at most ${MAX_ACTION_ID_LENGTH} characters`)
    .safeParse(text);
  if (!str.success) {
    const len = typeof text === 'string' ? ` (got ${text.length} characters)` : '';
    return refuse(RefusalCode.invalidInput, `Invalid action id${len}: ${zodMessage(str.error)}.`, {
      field: 'action_id',
    });
  }
  const raw = str.data;
  const parts = raw.split(':');
  const [prefix, kind, ...rest] = parts;
  if (prefix !== ACTION_PREFIX || kind === undefined) {
    return refuse(RefusalCode.invalidInput, `Invalid action id "${clip(raw)}": ${expected}.`, {
      field: 'action_id',
      input: clip(raw),
    });
  }
  let candidate: unknown;
  if (isPlanKind(kind)) {
    if (rest.length !== 1) {
      return refuse(
        RefusalCode.invalidInput,
        `Invalid action id "${clip(raw)}": ${kind} expects one plan id after the kind.`,
        { field: 'action_id', input: clip(raw) },
      );
    }
    candidate = { kind, ref: rest[0] };
  } else if (isDeploymentKind(kind)) {
    if (rest.length !== 2) {
      return refuse(
        RefusalCode.invalidInput,
        `Invalid action id "${clip(raw)}": ${kind} expects "<environment>:<deployment id>" after the kind.`,
        { field: 'action_id', input: clip(raw) },
      );
    }
    candidate = { kind, ref: { environment: rest[0], deploymentId: rest[1] } };
  } else {
    return refuse(
      RefusalCode.invalidInput,
      `Invalid action id "${clip(raw)}": unknown kind "${clip(kind, 30)}"; ${expected}.`,
      {
        field: 'action_id',
        input: clip(raw),
      },
    );
  }
  const parsed = actionSchema.safeParse(candidate);
  if (!parsed.success) {
    return refuse(
      RefusalCode.invalidInput,
      `Invalid action id "${clip(raw)}": ${zodMessage(parsed.error)}.`,
      {
        field: 'action_id',
        input: clip(raw),
      },
    );
  }
  return ok(parsed.data);
}

/**
 * A pattern matching the ids of one kind, for routing clicks (Bolt `app.action({ action_id })`,
 * a Discord `custom_id` check). Matching only routes; the handler still calls `parseAction`.
 */
export function actionIdPattern(kind: ActionKind): RegExp {
  return new RegExp(`^${ACTION_PREFIX}:${kind}:`);
}
