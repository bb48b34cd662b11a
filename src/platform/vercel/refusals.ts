/**
 * Vercel's documented error answers → Switchyard refusals and faults. A 4xx from Vercel (other than
 * 409 and 429) is a "no": it becomes a RefusalError (retry=false) carrying Vercel's code and message.
 * 409 (another alias job of the project is running) becomes the retryable `operation_in_progress`, like
 * the local platform's busy answer, so the job is tried again later. 429, 5xx, timeouts and network
 * errors stay PlatformHttpErrors (retryable; the client already retried them).
 */
import { RefusalCode, type RefusalCode as RefusalCodeType } from '../../domain/result.js';
import { PlatformHttpError, RefusalError, SwitchyardError } from '../../errors.js';
import { INVALID_TOKEN_NOTE } from './schemas.js';

/** What the adapter was doing when Vercel answered. */
export const VercelCall = {
  readProject: 'read project',
  listDomains: 'list domains',
  listDeployments: 'list deployments',
  getDeployment: 'read deployment',
  readAlias: 'read alias',
  rollback: 'rollback',
  promote: 'promote',
} as const;
export type VercelCall = (typeof VercelCall)[keyof typeof VercelCall];

export interface RefusalContext {
  readonly call: VercelCall;
  /** The configured project (`vercel.project` / `VERCEL_PROJECT`). */
  readonly project: string;
  readonly teamId?: string;
  readonly deploymentId?: string;
  readonly environment?: string;
}

function verbOf(call: VercelCall): string {
  switch (call) {
    case 'rollback':
      return 'roll back to';
    case 'promote':
      return 'promote';
    case 'read project':
    case 'list domains':
    case 'list deployments':
    case 'read deployment':
    case 'read alias':
      return 'read';
    default:
      return call satisfies never;
  }
}

/**
 * Converts a Vercel refusal into a RefusalError (or, for 409, a retryable `operation_in_progress`
 * error); returns any other error unchanged (faults stay faults).
 */
export function toRefusal(e: unknown, ctx: RefusalContext): unknown {
  if (!(e instanceof PlatformHttpError)) return e;
  const { status, platformCode } = e;
  // Not refusals: the platform may accept the same request later (rate limit, request timeout).
  if (status < 400 || status >= 500 || status === 429 || status === 408) return e;
  const detail = detailOf(e);
  const codeText = platformCode ?? String(status);
  const context = {
    status,
    platformCode: platformCode ?? null,
    call: ctx.call,
    project: ctx.project,
    ...(ctx.deploymentId === undefined ? {} : { target: ctx.deploymentId }),
    ...(ctx.environment === undefined ? {} : { environment: ctx.environment }),
  };
  const refusal = (code: RefusalCodeType, message: string) => new RefusalError({ code, message, context });
  const scope = ctx.teamId === undefined ? 'your personal account' : `team ${ctx.teamId}`;

  if (status === 409) {
    // Says what Vercel answered, not what happens next: the job processor says whether it retries
    // ("attempt 2 of 6; retrying"), and its last attempt must not promise another one.
    return new SwitchyardError(
      RefusalCode.operationInProgress,
      `Vercel is still moving the domains of project ${ctx.project} for an earlier rollback or promote (409 ${codeText}: ${detail}).`,
      { retry: true, context },
    );
  }
  if (status === 401) {
    return refusal(
      RefusalCode.platformUnauthorized,
      `Vercel rejected the token (401 ${codeText}: ${detail}). Set VERCEL_TOKEN to a valid access token with access to ${scope}.`,
    );
  }
  if (status === 403 && detail.endsWith(INVALID_TOKEN_NOTE)) {
    return refusal(
      RefusalCode.platformUnauthorized,
      `Vercel rejected the token as invalid (403 ${codeText}: ${detail}). Set VERCEL_TOKEN to a valid access token with access to ${scope}.`,
    );
  }
  if (status === 403) {
    return refusal(
      RefusalCode.platformForbidden,
      `Vercel refused to let the token ${verbOf(ctx.call)} ${ctx.deploymentId ?? `project ${ctx.project}`} (403 ${codeText}: ${detail}). The token (VERCEL_TOKEN) may be invalid or expired, or lack access to ${scope}${ctx.teamId === undefined ? ' (set VERCEL_TEAM_ID when the project belongs to a team)' : ''}.`,
    );
  }
  if (status === 404) {
    if (ctx.deploymentId !== undefined && ctx.call !== 'read project') {
      return refusal(
        RefusalCode.unknownDeployment,
        `Vercel has no deployment ${ctx.deploymentId} visible to this token in ${scope} (404 ${codeText}: ${detail}).`,
      );
    }
    return refusal(
      RefusalCode.unknownEnvironment,
      `Vercel has no project "${ctx.project}" in ${scope} (404 ${codeText}: ${detail}): check vercel.project (or VERCEL_PROJECT) and VERCEL_TEAM_ID.`,
    );
  }
  if (ctx.call === 'rollback' || ctx.call === 'promote') {
    return refusal(
      RefusalCode.platformPrecondition,
      `Vercel refused to ${verbOf(ctx.call)} ${ctx.deploymentId ?? 'the deployment'} (${status} ${codeText}: ${detail}).`,
    );
  }
  return refusal(
    RefusalCode.invalidInput,
    `Vercel rejected the request to ${ctx.call} (${status} ${codeText}: ${detail}).`,
  );
}

/** Vercel's own explanation from a PlatformHttpError message (already free of the token). */
function detailOf(e: PlatformHttpError): string {
  const marker = `${e.url}: `;
  const at = e.message.indexOf(marker);
  return at >= 0 ? e.message.slice(at + marker.length) : e.message;
}
