/**
 * Zod schemas of the Unkey API v2 bodies Switchyard sends and reads (deployments.listDeployments,
 * getDeployment, rollbackDeployment, promoteDeployment), written from Unkey's published OpenAPI document.
 * Only the fields Switchyard uses are checked; unknown keys are stripped, so a new optional field on
 * Unkey's side does not break parsing, while a missing or mistyped field we rely on is reported by path.
 */
import { z } from 'zod';

/** Every lifecycle status Unkey documents for a deployment. */
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
export const UnkeyDeploymentStatusSchema = z.enum(unkeyDeploymentStatuses);
export type UnkeyDeploymentStatus = z.infer<typeof UnkeyDeploymentStatusSchema>;

/** Lifecycle operations Unkey says may be called on a deployment right now. */
export const UnkeyDeploymentActionSchema = z.enum(['promote', 'rollback', 'stop', 'start']);
export type UnkeyDeploymentAction = z.infer<typeof UnkeyDeploymentActionSchema>;

export const MetaSchema = z.object({ requestId: z.string() });

/**
 * A hostname of a deployment. The documented schema is a plain string; newer Unkey builds send
 * `{domain, type, status}` objects, which are accepted and reduced to the hostname.
 */
const DomainEntrySchema = z.union([
  z.string().min(1),
  z.object({ domain: z.string().min(1) }).transform((d) => d.domain),
]);

export const UnkeyDeploymentSchema = z.object({
  id: z.string().min(1),
  status: UnkeyDeploymentStatusSchema,
  isCurrent: z.boolean(),
  environment: z.string(),
  app: z.string(),
  project: z.string(),
  git: z.object({ commitSha: z.string(), branch: z.string().optional() }).optional(),
  docker: z.object({ image: z.string() }).optional(),
  availableActions: z.array(UnkeyDeploymentActionSchema),
  regions: z.array(z.string()),
  error: z.object({ code: z.string(), step: z.string(), message: z.string() }).optional(),
  domains: z.array(DomainEntrySchema).default([]),
  createdAt: z.number().int().nonnegative(),
  updatedAt: z.number().int().nonnegative().optional(),
});
export type UnkeyDeployment = z.infer<typeof UnkeyDeploymentSchema>;

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
