/**
 * Which configured Slack user groups a clicker belongs to, for the allow lists
 * (`environments.<env>.allow.slack.groups`). Membership comes from `usergroups.users.list`, one call per
 * configured group, cached briefly (a click storm costs one lookup per group, and a removal from a
 * group takes effect within the TTL). A failed lookup counts as "not a member" (fail closed) and is
 * logged and counted, never thrown.
 */
import type { WebClient } from '@slack/web-api';
import { type Clock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';

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
  readonly members: Promise<ReadonlySet<string>>;
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

  /** The configured group ids `userId` is a member of (empty when none are configured). */
  async groupsOf(userId: string): Promise<string[]> {
    const found: string[] = [];
    const members = await Promise.all(this.groups.map(async (g) => [g, await this.members(g)] as const));
    for (const [group, set] of members) if (set.has(userId)) found.push(group);
    return found;
  }

  private members(group: string): Promise<ReadonlySet<string>> {
    const now = this.clock.now();
    const cached = this.cache.get(group);
    if (cached && now - cached.at < this.ttlMs) return cached.members;
    const members = this.lookup(group);
    this.cache.set(group, { at: now, members });
    return members;
  }

  private async lookup(group: string): Promise<ReadonlySet<string>> {
    try {
      const res = await this.client.usergroups.users.list({ usergroup: group });
      return new Set(res.users ?? []);
    } catch (e) {
      const code = (e as { data?: { error?: unknown } }).data?.error;
      const label = typeof code === 'string' ? code : 'request_failed';
      this.metrics?.chatApiErrors.inc({ surface: 'slack', method: 'usergroups.users.list', code: label });
      this.logger.warn({ group, code: label }, 'slack user group lookup failed; treating as not a member');
      // Do not keep a failure for the whole TTL: the next click tries again.
      this.cache.delete(group);
      return new Set();
    }
  }
}
