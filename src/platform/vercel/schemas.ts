/**
 * Zod schemas of the Vercel REST API bodies Switchyard reads, written from Vercel's published API
 * reference: the project (`GET /v9/projects/{idOrName}`: `targets.production`, `autoAssignCustomDomains`,
 * `lastAliasRequest`), its domains (`GET /v9/projects/{idOrName}/domains`), deployments
 * (`GET /v6/deployments`, `GET /v13/deployments/{idOrUrl}`) and the error body `{ error: { code, message } }`.
 * Only the fields Switchyard uses are checked; unknown keys are stripped, so a new field on Vercel's
 * side does not break parsing, while a missing or mistyped field we rely on is reported by its path.
 * Both deployment shapes are normalised to one `VercelDeployment`.
 */
import { z } from 'zod';

/**
 * Every `readyState` Vercel's API lists for a deployment (vercel/sdk `GetDeploymentsReadyState`,
 * `GetDeploymentResponseBodyDeploymentsReadyState`).
 */
export const vercelReadyStates = [
  'QUEUED',
  'BUILDING',
  'ERROR',
  'INITIALIZING',
  'READY',
  'CANCELED',
  'BLOCKED',
  'DELETED',
] as const;
export type KnownVercelReadyState = (typeof vercelReadyStates)[number];
/**
 * A documented state, or any other string: Vercel adds states over time, and one deployment in a state
 * this list lacks must not fail the whole page (the mapping treats it as not ready).
 */
export type VercelReadyState = KnownVercelReadyState | (string & {});
export const VercelReadyStateSchema: z.ZodType<VercelReadyState> = z.string().min(1);

/** `lastAliasRequest.jobStatus` values. */
export const aliasJobStatuses = ['pending', 'in-progress', 'succeeded', 'failed', 'skipped'] as const;
export const AliasJobStatusSchema = z.enum(aliasJobStatuses);
export type AliasJobStatus = z.infer<typeof AliasJobStatusSchema>;

/** The project's last rollback/promote alias job. */
export const LastAliasRequestSchema = z.object({
  fromDeploymentId: z.string().nullable().optional(),
  toDeploymentId: z.string().min(1),
  jobStatus: AliasJobStatusSchema,
  requestedAt: z.number(),
  type: z.enum(['promote', 'rollback']),
});
export type LastAliasRequest = z.infer<typeof LastAliasRequestSchema>;

/** `GET /v9/projects/{idOrName}` (the fields Switchyard reads). */
export const ProjectSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  /** Absent means true: Vercel sets it to false by a rollback and back to true by a promote. */
  autoAssignCustomDomains: z.boolean().optional(),
  targets: z
    .object({
      production: z
        .object({ id: z.string().min(1) })
        .nullable()
        .optional(),
    })
    .nullable()
    .optional(),
  lastAliasRequest: LastAliasRequestSchema.nullable().optional(),
  link: z.object({ productionBranch: z.string().optional() }).nullable().optional(),
});
export type VercelProject = z.infer<typeof ProjectSchema>;

/** Timestamp-based paging of Vercel's list endpoints: pass `next` as `until` for the next page. */
export const PaginationSchema = z.object({
  count: z.number().int().nonnegative(),
  next: z.number().nullable(),
  prev: z.number().nullable().optional(),
});

/** One entry of `GET /v9/projects/{idOrName}/domains`. */
export const ProjectDomainSchema = z.object({
  name: z.string().min(1),
  apexName: z.string(),
  projectId: z.string(),
  verified: z.boolean(),
  redirect: z.string().nullable().optional(),
  redirectStatusCode: z.number().nullable().optional(),
  gitBranch: z.string().nullable().optional(),
  customEnvironmentId: z.string().nullable().optional(),
  createdAt: z.number().optional(),
  updatedAt: z.number().optional(),
});
export type VercelProjectDomain = z.infer<typeof ProjectDomainSchema>;

/** One alias (a domain) and the deployment it points to now; `deploymentId` is null for a redirect. */
export const AliasSchema = z.object({
  alias: z.string().min(1),
  uid: z.string(),
  deploymentId: z.string().nullable(),
  projectId: z.string().nullable().optional(),
});
export type VercelAlias = z.infer<typeof AliasSchema>;

/**
 * `GET /v4/aliases/{idOrAlias}`. Vercel's API reference documents a single alias object; the example
 * answer on its SDK reference page is an array holding that object. Both are accepted: an array is
 * reduced to its entry for the requested name (`aliasFromResponse`), an empty one to no alias.
 */
export const AliasResponseSchema = z.union([AliasSchema, z.array(AliasSchema)]);
export type AliasResponse = z.infer<typeof AliasResponseSchema>;

/** The alias `name` from either answer shape (case-insensitive; the only entry of an array of one). */
export function aliasFromResponse(res: AliasResponse, name: string): VercelAlias | undefined {
  if (!Array.isArray(res)) return res;
  const wanted = name.toLowerCase().replace(/\.$/, '');
  const same = res.find((a) => a.alias.toLowerCase().replace(/\.$/, '') === wanted);
  if (same !== undefined) return same;
  return res.length === 1 ? res[0] : undefined;
}

export const ProjectDomainsResponseSchema = z.object({
  domains: z.array(ProjectDomainSchema),
  pagination: PaginationSchema.optional(),
});

/** `meta` of a deployment: string values only are kept (git metadata such as `githubCommitSha`). */
const MetaSchema = z
  .record(z.string(), z.unknown())
  .nullable()
  .optional()
  .transform((m) => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(m ?? {})) if (typeof v === 'string') out[k] = v;
    return out;
  });

/** A deployment as Switchyard uses it, from either the list or the single-deployment endpoint. */
export interface VercelDeployment {
  readonly id: string;
  readonly url: string;
  readonly readyState: VercelReadyState;
  /** `production`, or null/other for preview deployments. */
  readonly target: string | null;
  readonly projectId?: string;
  /** Unix ms. */
  readonly createdAt: number;
  /** Unix ms when it became ready. */
  readonly ready?: number;
  readonly meta: Readonly<Record<string, string>>;
}

/** One entry of `GET /v6/deployments` (`uid`, `created`, `state`/`readyState`). */
export const ListedDeploymentSchema = z
  .object({
    uid: z.string().min(1),
    url: z.string(),
    created: z.number(),
    createdAt: z.number().optional(),
    state: VercelReadyStateSchema.optional(),
    readyState: VercelReadyStateSchema.optional(),
    target: z.string().nullable().optional(),
    ready: z.number().optional(),
    projectId: z.string().optional(),
    meta: MetaSchema,
  })
  .superRefine((d, ctx) => {
    if (d.state === undefined && d.readyState === undefined) {
      ctx.addIssue({ code: 'custom', path: ['state'], message: 'expected state or readyState' });
    }
  })
  .transform(
    (d): VercelDeployment => ({
      id: d.uid,
      url: d.url,
      readyState: d.readyState ?? d.state ?? 'QUEUED',
      target: d.target ?? null,
      ...(d.projectId === undefined ? {} : { projectId: d.projectId }),
      createdAt: d.createdAt ?? d.created,
      ...(d.ready === undefined ? {} : { ready: d.ready }),
      meta: d.meta,
    }),
  );

export const ListDeploymentsResponseSchema = z.object({
  deployments: z.array(ListedDeploymentSchema),
  pagination: PaginationSchema,
});
export type ListDeploymentsResponse = z.infer<typeof ListDeploymentsResponseSchema>;

/** `GET /v13/deployments/{idOrUrl}`. */
export const GetDeploymentResponseSchema = z
  .object({
    id: z.string().min(1),
    url: z.string(),
    readyState: VercelReadyStateSchema,
    target: z.string().nullable().optional(),
    projectId: z.string().min(1),
    createdAt: z.number(),
    ready: z.number().optional(),
    meta: MetaSchema,
  })
  .transform(
    (d): VercelDeployment => ({
      id: d.id,
      url: d.url,
      readyState: d.readyState,
      target: d.target ?? null,
      projectId: d.projectId,
      createdAt: d.createdAt,
      ...(d.ready === undefined ? {} : { ready: d.ready }),
      meta: d.meta,
    }),
  );

/** Rollback (201) and promote (201/202) answer with an empty or uninteresting body. */
export const AcceptedResponseSchema = z.unknown();

/** Vercel's error body. */
export const ErrorResponseSchema = z.object({
  error: z.object({
    code: z.string().min(1),
    message: z.string().optional(),
    /** Set on a 403 `forbidden` when the token itself is not valid (unknown, revoked or expired). */
    invalidToken: z.boolean().optional(),
  }),
});
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

/**
 * What an error's detail ends with when Vercel marked the token itself invalid (`invalidToken`): the
 * refusal then names the setting to fix (src/platform/vercel/refusals.ts).
 */
export const INVALID_TOKEN_NOTE = ' (invalidToken: true)';
