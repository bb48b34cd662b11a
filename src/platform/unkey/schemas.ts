/**
 * Zod schemas of the Unkey API v2 bodies Switchyard sends and reads (deployments.listDeployments,
 * getDeployment, rollbackDeployment, promoteDeployment), written from Unkey's published OpenAPI document.
 * Only the fields Switchyard uses are checked; unknown keys are stripped, so a new optional field on
 * Unkey's side does not break parsing, while a missing or mistyped field we rely on is reported by path.
 */
import { z } from 'zod';

/** Every lifecycle status Unkey documents for a deployment (DeploymentStatus at fc99b6b). */
export const unkeyDeploymentStatuses = [
  'pending',
  'starting',
  'building',
  'deploying',
  'network',
  'finalizing',
  'ready',
  'failed',
  'skipped',
  'awaiting_approval',
  'stopped',
  'superseded',
  'cancelled',
] as const;
export type KnownUnkeyDeploymentStatus = (typeof unkeyDeploymentStatuses)[number];
/** The documented statuses only: what Switchyard may send as a `status` filter. */
export const UnkeyDeploymentStatusSchema = z.enum(unkeyDeploymentStatuses);
/**
 * A status as Unkey answers it: a documented one, or any other string. Unkey adds lifecycle statuses
 * over time, and one deployment in a status this list lacks must not fail the whole listDeployments page
 * (snapshots, plans, the event poller and readiness all read it); the mapping treats it as not ready.
 */
export type UnkeyDeploymentStatus = KnownUnkeyDeploymentStatus | (string & {});
export const AnswerStatusSchema: z.ZodType<UnkeyDeploymentStatus> = z.string().min(1);

/** True for the statuses Unkey documents (see `unkeyDeploymentStatuses`). */
export function isKnownStatus(status: string): status is KnownUnkeyDeploymentStatus {
  return (unkeyDeploymentStatuses as readonly string[]).includes(status);
}

/** Lifecycle operations Unkey says may be called on a deployment right now. */
export const unkeyDeploymentActions = ['promote', 'rollback', 'stop', 'start'] as const;
export const UnkeyDeploymentActionSchema = z.enum(unkeyDeploymentActions);
export type UnkeyDeploymentAction = z.infer<typeof UnkeyDeploymentActionSchema>;

/**
 * `availableActions` as Unkey answers it: every entry must be a string, and the ones Switchyard does not
 * know (an action Unkey adds later) are dropped, so they neither fail the page nor count as a signal
 * (rolled back, running, environment kind). The dropped values are kept in `ignoredActions` for logging.
 */
const AvailableActionsSchema = z.array(z.string());

export function isKnownAction(action: string): action is UnkeyDeploymentAction {
  return (unkeyDeploymentActions as readonly string[]).includes(action);
}

export const MetaSchema = z.object({ requestId: z.string() });

/**
 * A hostname of a deployment. The documented schema is a plain string; newer Unkey builds send
 * `{domain, type, status}` objects, which are accepted and reduced to the hostname.
 */
const DomainEntrySchema = z.union([
  z.string().min(1),
  z.object({ domain: z.string().min(1) }).transform((d) => d.domain),
]);

/** A deployment as Switchyard uses it (see `UnkeyDeploymentSchema`). */
export interface UnkeyDeployment {
  readonly id: string;
  readonly status: UnkeyDeploymentStatus;
  readonly isCurrent: boolean;
  readonly environment: string;
  readonly app: string;
  readonly project: string;
  readonly git?: { readonly commitSha: string; readonly branch?: string | undefined } | undefined;
  readonly docker?: { readonly image: string } | undefined;
  /** The documented actions Unkey offers now (unknown ones are in `ignoredActions`). */
  readonly availableActions: readonly UnkeyDeploymentAction[];
  /** Actions Unkey offered that Switchyard does not know; ignored (absent when there are none). */
  readonly ignoredActions?: readonly string[];
  readonly regions: readonly string[];
  readonly error?: { readonly code: string; readonly step: string; readonly message: string } | undefined;
  readonly domains: readonly string[];
  readonly createdAt: number;
  readonly updatedAt?: number | undefined;
}

export const UnkeyDeploymentSchema = z
  .object({
    id: z.string().min(1),
    status: AnswerStatusSchema,
    isCurrent: z.boolean(),
    environment: z.string(),
    app: z.string(),
    project: z.string(),
    git: z.object({ commitSha: z.string(), branch: z.string().optional() }).optional(),
    docker: z.object({ image: z.string() }).optional(),
    availableActions: AvailableActionsSchema,
    regions: z.array(z.string()),
    error: z.object({ code: z.string(), step: z.string(), message: z.string() }).optional(),
    domains: z.array(DomainEntrySchema).default([]),
    createdAt: z.number().int().nonnegative(),
    updatedAt: z.number().int().nonnegative().optional(),
  })
  .transform((d): UnkeyDeployment => {
    const known = d.availableActions.filter(isKnownAction);
    const ignored = d.availableActions.filter((a) => !isKnownAction(a));
    return {
      ...d,
      availableActions: known,
      ...(ignored.length === 0 ? {} : { ignoredActions: ignored }),
    };
  });

export const GetDeploymentResponseSchema = z.object({ meta: MetaSchema, data: UnkeyDeploymentSchema });

export const ListDeploymentsResponseSchema = z.object({
  meta: MetaSchema,
  data: z.array(UnkeyDeploymentSchema).max(100),
  pagination: z.object({ cursor: z.string().min(1).optional(), hasMore: z.boolean() }),
});
export type ListDeploymentsResponse = z.infer<typeof ListDeploymentsResponseSchema>;

/** 202 answer of rollbackDeployment and promoteDeployment: the workflow was accepted. */
export const AcceptedResponseSchema = z.object({ meta: MetaSchema, data: z.object({}) });

/** RFC 7807-style error body; `type` is a URL whose last path segment is Unkey's error code. */
export const ErrorResponseSchema = z.object({
  meta: MetaSchema.optional(),
  error: z.object({
    title: z.string().optional(),
    detail: z.string().optional(),
    status: z.number().int().optional(),
    type: z.string(),
  }),
});
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

/** Unkey's error code from an error `type` such as `https://unkey.com/docs/errors/unkey/application/deployment_not_ready`. */
export function errorCodeFromType(type: string): string {
  const trimmed = type.replace(/[/#?]+$/, '');
  const last = trimmed.split(/[/#]/).pop();
  return last === undefined || last === '' ? type : last;
}

const ResourceIdentifier = z
  .string()
  .min(3)
  .max(255)
  .regex(/^[a-zA-Z0-9_-]+$/, 'expected letters, digits, _ or -');

export const ListDeploymentsRequestSchema = z
  .object({
    project: ResourceIdentifier.optional(),
    app: ResourceIdentifier.optional(),
    environment: ResourceIdentifier.optional(),
    status: z.array(UnkeyDeploymentStatusSchema).max(13).optional(),
    limit: z.number().int().min(1).max(100).optional(),
    cursor: z.string().min(1).optional(),
  })
  .strict();
export type ListDeploymentsRequest = z.infer<typeof ListDeploymentsRequestSchema>;

export const DeploymentIdRequestSchema = z.object({ deploymentId: ResourceIdentifier }).strict();
export type DeploymentIdRequest = z.infer<typeof DeploymentIdRequestSchema>;
