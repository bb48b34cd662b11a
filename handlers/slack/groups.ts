/**
 * Which configured Slack user groups a clicker belongs to, for the allow lists
 * (`environments.<env>.allow.slack.groups`). Membership comes from `usergroups.users.list`, one call per
 * configured group, cached briefly (a click storm costs one lookup per group, and a removal from a
 * group takes effect within the TTL). A failed lookup is logged and counted, never thrown: it grants
 * nothing (fail closed), and the group comes back in `uncheckedGroups` so a refusal can say that
 * Switchyard could not check the person's user groups instead of telling a real member they are not on
 * the allow list. Failures come in two kinds (LASTING_GROUP_ERRORS): one that passes (rate limited,
 * Slack's 5xx, a network fault) is not cached, so the next click asks again and the refusal says to
 * try again; one no retry can change (the group id does not exist, the workspace's plan has no user
 * groups, a missing scope, a rejected token) is cached like an answer and also comes back in
 * `rejectedGroups` with Slack's code and what to fix, so the refusal names the config key and says what
 * has to be fixed before a retry helps (the config key only for an unknown group id: `no_such_subteam`;
 * the app, the token or the workspace's settings for the others). `check()` looks every configured group
 * up once (start-up logs what it finds).
 */
import type { WebClient } from '@slack/web-api';
import { type Clock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import { type Membership, type RejectedGroup, UNKNOWN_GROUP_CODE } from '../../src/permissions.js';

const TOKEN_REJECTED = 'Slack rejected the bot token; fix SLACK_BOT_TOKEN and restart Switchyard';
const ACCESS_DENIED =
  'Slack denies the app access to this user group; a workspace admin has to allow it, or list the people by user id instead';
const CALL_REFUSED =
  'Slack refuses this call from the app, whatever the group; list the people by user id instead';

/**
 * Slack's answers to `usergroups.users.list` that no retry can change (the method's documented errors),
 * each with what it means and what an operator does about it. Every other failure is taken to pass
 * (the next click asks Slack again): `ratelimited`, `fatal_error`, `internal_error`,
 * `service_unavailable`, `request_timeout`, a workspace being migrated (`team_added_to_org`,
 * `org_login_required`), an HTTP 5xx, a network fault or a timeout, and any code not listed here.
 */
export const LASTING_GROUP_ERRORS: ReadonlyMap<string, string> = new Map([
  [
    UNKNOWN_GROUP_CODE, // no_such_subteam: the one the config key fixes (src/permissions.ts)
    'Slack has no user group with this id in this workspace (a typo, a deleted group, or a group of another workspace); correct the id',
  ],
  [
    'plan_upgrade_required',
    "this Slack workspace's plan has no user groups (they need a paid plan); list the people by user id instead",
  ],
  [
    'missing_scope',
    'the Slack app lacks the usergroups:read scope; add it (manifest.yml asks for it) and reinstall the app',
  ],
  [
    'not_allowed_token_type',
    'Slack does not take this kind of token here; SLACK_BOT_TOKEN must be the Bot User OAuth Token (xoxb-…)',
  ],
  ['not_authed', TOKEN_REJECTED],
  ['invalid_auth', TOKEN_REJECTED],
  ['account_inactive', TOKEN_REJECTED],
  ['token_revoked', TOKEN_REJECTED],
  ['token_expired', TOKEN_REJECTED],
  ['no_permission', ACCESS_DENIED],
  ['access_denied', ACCESS_DENIED],
  ['team_access_not_granted', ACCESS_DENIED],
  ['ekm_access_denied', ACCESS_DENIED],
  ['enterprise_is_restricted', ACCESS_DENIED],
  ['is_bot', CALL_REFUSED],
  ['user_is_restricted', CALL_REFUSED],
  ['two_factor_setup_required', CALL_REFUSED],
  ['invalid_arguments', CALL_REFUSED],
  ['invalid_arg_name', CALL_REFUSED],
  ['deprecated_endpoint', CALL_REFUSED],
  ['method_deprecated', CALL_REFUSED],
]);

export interface UserGroupResolverOptions {
  readonly client: WebClient;
  /** Group ids named by any allow list; only these are ever looked up. */
  readonly groups: readonly string[];
  readonly ttlMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Pick<Metrics, 'chatApiErrors'>;
}

/** Defaults (STYLE 6). */
export const userGroupResolverDefaults = {
  ttlMs: 60_000,
  clock: systemClock,
  logger: silentLogger,
} as const satisfies Required<Pick<UserGroupResolverOptions, 'ttlMs' | 'clock' | 'logger'>>;

/** What one lookup of a group's members gave. */
type Lookup =
  | { readonly ok: true; readonly members: ReadonlySet<string> }
  /** `lasting`: Slack's answer cannot change by asking again (LASTING_GROUP_ERRORS). */
  | { readonly ok: false; readonly code: string; readonly lasting: boolean };

interface Entry {
  readonly at: number;
  readonly lookup: Promise<Lookup>;
}

/** What `check()` found for one configured group whose lookup failed. */
export type GroupCheckProblem =
  | (RejectedGroup & { readonly lasting: true })
  | { readonly group: string; readonly code: string; readonly lasting: false };

/** Resolves a user's configured Slack user groups (see the module header). */
export class UserGroupResolver {
  private readonly client: WebClient;
  private readonly groups: readonly string[];
  private readonly ttlMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: Pick<Metrics, 'chatApiErrors'> | undefined;
  private readonly cache = new Map<string, Entry>();

  constructor(opts: UserGroupResolverOptions) {
    this.client = opts.client;
    this.groups = [...new Set(opts.groups)];
    this.ttlMs = opts.ttlMs ?? userGroupResolverDefaults.ttlMs;
    this.clock = opts.clock ?? userGroupResolverDefaults.clock;
    this.logger = opts.logger ?? userGroupResolverDefaults.logger;
    this.metrics = opts.metrics;
  }

  /**
   * The configured group ids `userId` is a member of (empty when none are configured), those whose
   * members could not be looked up (`uncheckedGroups`), and of these the ones Slack refused for good
   * (`rejectedGroups`, with Slack's code and what to fix); each list present only when not empty.
   */
  async groupsOf(
    userId: string,
  ): Promise<Pick<Membership, 'groups' | 'uncheckedGroups' | 'rejectedGroups'> & { groups: string[] }> {
    const groups: string[] = [];
    const unchecked: string[] = [];
    const rejected: RejectedGroup[] = [];
    const lookups = await Promise.all(this.groups.map(async (g) => [g, await this.members(g)] as const));
    for (const [group, lookup] of lookups) {
      if (!lookup.ok) {
        unchecked.push(group);
        if (lookup.lasting) rejected.push(rejection(group, lookup.code));
      } else if (lookup.members.has(userId)) groups.push(group);
    }
    return {
      groups,
      ...(unchecked.length > 0 ? { uncheckedGroups: unchecked } : {}),
      ...(rejected.length > 0 ? { rejectedGroups: rejected } : {}),
    };
  }

  /**
   * Looks every configured group up (through the cache, so the answers also serve the next clicks) and
   * returns those whose lookup failed, each marked `lasting` or not. Never rejects.
   */
  async check(): Promise<GroupCheckProblem[]> {
    const lookups = await Promise.all(this.groups.map(async (g) => [g, await this.members(g)] as const));
    const problems: GroupCheckProblem[] = [];
    for (const [group, lookup] of lookups) {
      if (lookup.ok) continue;
      problems.push(
        lookup.lasting
          ? { ...rejection(group, lookup.code), lasting: true }
          : { group, code: lookup.code, lasting: false },
      );
    }
    return problems;
  }

  private members(group: string): Promise<Lookup> {
    const now = this.clock.now();
    const cached = this.cache.get(group);
    if (cached && now - cached.at < this.ttlMs) return cached.lookup;
    const lookup = this.lookup(group);
    const entry: Entry = { at: now, lookup };
    this.cache.set(group, entry);
    // Do not keep a failure that may pass for the whole TTL: the next click tries again. One that
    // cannot pass is kept like an answer (a click storm on a mistyped group id asks Slack once a TTL).
    void lookup.then((l) => {
      if (!l.ok && !l.lasting && this.cache.get(group) === entry) this.cache.delete(group);
    });
    return lookup;
  }

  private async lookup(group: string): Promise<Lookup> {
    try {
      const res = await this.client.usergroups.users.list({ usergroup: group });
      return { ok: true, members: new Set(res.users ?? []) };
    } catch (e) {
      const code = (e as { data?: { error?: unknown } }).data?.error;
      const label = typeof code === 'string' ? code : 'request_failed';
      const lasting = LASTING_GROUP_ERRORS.has(label);
      this.metrics?.chatApiErrors.inc({ surface: 'slack', method: 'usergroups.users.list', code: label });
      this.logger.warn(
        { group, code: label, lasting },
        lasting
          ? `slack user group lookup refused for good (${label}); the group grants nothing until an operator fixes it`
          : 'slack user group lookup failed; it grants nothing this time',
      );
      return { ok: false, code: label, lasting };
    }
  }
}

function rejection(group: string, code: string): RejectedGroup {
  return { group, code, problem: LASTING_GROUP_ERRORS.get(code) ?? `Slack refused the lookup (${code})` };
}
