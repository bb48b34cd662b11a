/**
 * Refusals as values (STYLE 2): a rule's "no" is data with a stable code and a human message, never a
 * throw. Faults are exceptions (see src/errors.ts).
 */

export const RefusalCode = {
  unknownEnvironment: 'unknown_environment',
  unknownDeployment: 'unknown_deployment',
  targetIsCurrent: 'target_is_current',
  targetNotReady: 'target_not_ready',
  targetStopped: 'target_stopped',
  targetWrongEnvironment: 'target_wrong_environment',
  noCurrentDeployment: 'no_current_deployment',
  noRollbackTarget: 'no_rollback_target',
  planStale: 'plan_stale',
  notProduction: 'not_production',
  forbidden: 'forbidden',
  selfApproval: 'self_approval',
  operationInProgress: 'operation_in_progress',
  invalidInput: 'invalid_input',
  /**
   * The switch would move more domains than Switchyard verifies in one switch (`MAX_SWITCH_DOMAINS`,
   * src/domain/plan.ts): refused when planning, before any button is offered.
   */
  tooManyDomains: 'too_many_domains',
  /**
   * The switch would move a domain whose name Switchyard cannot carry to the switch job and verify
   * (`isSwitchHostname`, src/domain/plan.ts): refused when planning, before any button is offered.
   */
  unsupportedDomain: 'unsupported_domain',
  /**
   * Someone dismissed the alert suggestion of this very switch: alerts do not suggest it again (a
   * person can still ask for it). Only alert suggestions are refused this way.
   */
  suggestionDismissed: 'suggestion_dismissed',
  /** The platform refused for a reason of its own (billing, plan, a precondition Switchyard cannot see). */
  platformPrecondition: 'platform_precondition',
  /** The platform rejected Switchyard's credentials (e.g. Unkey 401: root key invalid or revoked). */
  platformUnauthorized: 'platform_unauthorized',
  /** Switchyard's platform credentials lack a permission (e.g. Unkey 403: root key permission missing). */
  platformForbidden: 'platform_forbidden',
} as const;
export type RefusalCode = (typeof RefusalCode)[keyof typeof RefusalCode];

export interface Refusal {
  readonly code: RefusalCode;
  /** One or two sentences a person in an incident can act on. */
  readonly message: string;
  /** Machine-readable details (valid environments, the deployment now current, …). */
  readonly context?: Readonly<Record<string, unknown>>;
}

export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly refusal: Refusal };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function refuse<T = never>(
  code: RefusalCode,
  message: string,
  context?: Readonly<Record<string, unknown>>,
): Result<T> {
  return { ok: false, refusal: context === undefined ? { code, message } : { code, message, context } };
}
