/**
 * Unkey's documented error answers → Switchyard refusals. A 4xx from Unkey (other than 429) is a "no":
 * it becomes a RefusalError (retry=false) whose message says what to do, including which root-key
 * permission is missing. 429, 5xx, timeouts and network errors stay PlatformHttpErrors (retryable).
 */
import { RefusalCode, type RefusalCode as RefusalCodeType } from '../../domain/result.js';
import { PlatformHttpError, RefusalError } from '../../errors.js';

/** The endpoints Switchyard calls, with the root-key permission each one needs. */
export const UnkeyPermission = {
  'deployments.listDeployments': 'environment.*.read_deployment',
  'deployments.getDeployment': 'environment.*.read_deployment',
  'deployments.rollbackDeployment': 'environment.*.rollback_deployment',
  'deployments.promoteDeployment': 'environment.*.promote_deployment',
} as const;
export type UnkeyEndpoint = keyof typeof UnkeyPermission;

const ALL_PERMISSIONS = Object.values(UnkeyPermission)
  .filter((p, i, all) => all.indexOf(p) === i)
  .join(', ');

export interface RefusalContext {
  readonly endpoint: UnkeyEndpoint;
  /** The deployment the call was about (getDeployment, rollback, promote). */
  readonly deploymentId?: string;
  /** Switchyard environment slug and its Unkey mapping, for list calls. */
  readonly environment?: string;
  readonly mapping?: { readonly project: string; readonly app?: string; readonly environment: string };
}

function verbOf(endpoint: UnkeyEndpoint): string {
  switch (endpoint) {
    case 'deployments.rollbackDeployment':
      return 'roll back to';
    case 'deployments.promoteDeployment':
      return 'promote';
    case 'deployments.getDeployment':
    case 'deployments.listDeployments':
      return 'read';
  }
}

/**
 * Converts an Unkey refusal into a RefusalError; returns any other error unchanged (faults stay faults).
 */
export function toRefusal(e: unknown, ctx: RefusalContext): unknown {
  if (!(e instanceof PlatformHttpError)) return e;
  const { status, platformCode } = e;
  // Not refusals: the platform may accept the same request later (rate limit, request timeout).
  if (status < 400 || status >= 500 || status === 429 || status === 408) return e;
  const permission = UnkeyPermission[ctx.endpoint];
  const id = ctx.deploymentId ?? 'the deployment';
  const context = {
    status,
    platformCode: platformCode ?? null,
    endpoint: ctx.endpoint,
    ...(ctx.deploymentId === undefined ? {} : { target: ctx.deploymentId }),
    ...(ctx.environment === undefined ? {} : { environment: ctx.environment }),
  };
  const refusal = (code: RefusalCodeType, message: string) =>
    new RefusalError({ code, message, context: { ...context, requiredPermission: permission } });

  if (
    status === 401 ||
    platformCode === 'missing' ||
    platformCode === 'malformed' ||
    platformCode === 'key_not_found'
  ) {
    return refusal(
      RefusalCode.platformUnauthorized,
      `Unkey rejected the root key (${status} ${platformCode ?? 'unauthorized'}): it is missing, malformed, revoked or from another workspace. Set UNKEY_ROOT_KEY to a root key with ${ALL_PERMISSIONS}.`,
    );
  }
  if (status === 403) {
    return refusal(
      RefusalCode.platformForbidden,
      `The Unkey root key may not ${verbOf(ctx.endpoint)} deployments here: ${ctx.endpoint} needs the ${permission} permission. Add it to the root key in Unkey (Settings → Root Keys).`,
    );
  }
  if (status === 404) {
    if (platformCode === 'deployment_not_found' || ctx.deploymentId !== undefined) {
      return refusal(
        RefusalCode.unknownDeployment,
        `Unkey answered "deployment not found" for ${id}: either it does not exist in this workspace, or the root key lacks the ${permission} permission (Unkey answers 404 for both so it never reveals a deployment).`,
      );
    }
    const m = ctx.mapping;
    const where =
      m === undefined
        ? 'the configured project/app/environment'
        : `project "${m.project}"${m.app === undefined ? '' : `, app "${m.app}"`}, environment "${m.environment}"`;
    return refusal(
      RefusalCode.unknownEnvironment,
      `Unkey does not know ${where}${ctx.environment === undefined ? '' : ` (Switchyard environment ${ctx.environment})`}: check environments.${ctx.environment ?? '<slug>'}.unkey in the config (${platformCode ?? 'not found'}).`,
    );
  }
  if (status === 412) {
    switch (platformCode) {
      case 'deployment_not_production':
        return refusal(
          RefusalCode.notProduction,
          `Unkey rolls back production environments only: ${id} does not belong to the production environment, so Unkey will not ${verbOf(ctx.endpoint)} it.`,
        );
      case 'deployment_not_ready':
      case 'deployment_not_running':
      case 'deployment_is_stopping':
        return refusal(
          RefusalCode.targetNotReady,
          `Unkey refused: ${id} is not ready or is shutting down, so it cannot take traffic (${platformCode}). Unkey stops a production deployment 30 minutes after it stopped serving and does not start it again. Pick a ready deployment.`,
        );
      case 'deployment_is_current':
        return refusal(
          RefusalCode.targetIsCurrent,
          `Unkey refused: ${id} is already the current deployment, so there is nothing to ${verbOf(ctx.endpoint)} (deployment_is_current).`,
        );
      case 'deployment_no_current':
        return refusal(
          RefusalCode.noCurrentDeployment,
          `Unkey refused: the app of ${id} has no current deployment, so there is nothing to ${ctx.endpoint === 'deployments.promoteDeployment' ? 'promote over' : 'roll back from'} (deployment_no_current).`,
        );
      default:
        return refusal(
          RefusalCode.platformPrecondition,
          `Unkey refused to ${verbOf(ctx.endpoint)} ${id}: ${detailOf(e)} (${platformCode ?? 'precondition_failed'}).`,
        );
    }
  }
  return refusal(
    RefusalCode.invalidInput,
    `Unkey rejected the ${ctx.endpoint} request (${status} ${platformCode ?? 'bad request'}): ${detailOf(e)}`,
  );
}

/** Unkey's own explanation from a PlatformHttpError message (already free of the root key). */
function detailOf(e: PlatformHttpError): string {
  const marker = `${e.url}: `;
  const at = e.message.indexOf(marker);
  return at >= 0 ? e.message.slice(at + marker.length) : e.message;
}
