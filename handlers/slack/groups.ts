/**
 * Which configured Slack user groups a clicker belongs to, for the allow lists
 * (`environments.<env>.allow.slack.groups`). Membership comes from `usergroups.users.list`, one call per
 * configured group, cached briefly (a click storm costs one lookup per group, and a removal from a
 * group takes effect within the TTL). A failed lookup is logged and counted, never thrown, and never
 * cached: it grants nothing (fail closed), and the group comes back in `uncheckedGroups` so a refusal can
 * say that Switchyard could not check the person's user groups right now, instead of telling a real
 * member they are not on the allow list.
 */
import type { WebClient } from '@slack/web-api';
import { type Clock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import type { Membership } from '../../src/permissions.js';

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

interface Entry {
  readonly at: number;
  /** undefined: the lookup failed. */
  readonly members: Promise<ReadonlySet<string> | undefined>;
}

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
   * The configured group ids `userId` is a member of (empty when none are configured), and those whose
   * members could not be looked up just now (`uncheckedGroups`, present only when there are some).
   */
  async groupsOf(
    userId: string,
  ): Promise<Pick<Membership, 'groups' | 'uncheckedGroups'> & { groups: string[] }> {
    const groups: string[] = [];
    const unchecked: string[] = [];
    const members = await Promise.all(this.groups.map(async (g) => [g, await this.members(g)] as const));
    for (const [group, set] of members) {
      if (set === undefined) unchecked.push(group);
      else if (set.has(userId)) groups.push(group);
    }
    return unchecked.length > 0 ? { groups, uncheckedGroups: unchecked } : { groups };
  }

  private members(group: string): Promise<ReadonlySet<string> | undefined> {
    const now = this.clock.now();
    const cached = this.cache.get(group);
    if (cached && now - cached.at < this.ttlMs) return cached.members;
    const members = this.lookup(group);
    const entry: Entry = { at: now, members };
    this.cache.set(group, entry);
    // Do not keep a failure for the whole TTL: the next click tries again.
    void members.then((set) => {
      if (set === undefined && this.cache.get(group) === entry) this.cache.delete(group);
    });
    return members;
  }

  private async lookup(group: string): Promise<ReadonlySet<string> | undefined> {
    try {
      const res = await this.client.usergroups.users.list({ usergroup: group });
      return new Set(res.users ?? []);
    } catch (e) {
      const code = (e as { data?: { error?: unknown } }).data?.error;
      const label = typeof code === 'string' ? code : 'request_failed';
      this.metrics?.chatApiErrors.inc({ surface: 'slack', method: 'usergroups.users.list', code: label });
      this.logger.warn({ group, code: label }, 'slack user group lookup failed; it grants nothing this time');
      return undefined;
    }
  }
}
