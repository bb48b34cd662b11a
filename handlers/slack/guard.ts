/**
 * What a request from Slack must pass besides Bolt's signature check (handlers/slack/app.ts puts these
 * in front of and behind it):
 *   - size: Bolt buffers a body before it checks the signature, up to 4 MiB by default, so anyone could
 *     make each connection hold that much. Slack's own requests are far smaller (a click carries the
 *     clicked message: at most 50 blocks; Switchyard's own messages make clicks of about 30 KB), so a
 *     body over SLACK_BODY_LIMIT_BYTES is answered 413 and its connection closed;
 *   - time: X-Slack-Request-Timestamp within SLACK_REQUEST_WINDOW_S of now, on the injected clock, in
 *     both directions (Bolt refuses only requests older than 5 minutes: a request signed with a date a
 *     year ahead would stay good for a year);
 *   - replay: Slack never sends a slash command or an interaction twice (a slow answer shows the person
 *     an error instead), so a second delivery of the same signed request (same timestamp and signature)
 *     is a replay: it is answered 200 and nothing is done. Remembered in Redis (SET NX PX) until the
 *     request falls out of the window, so every replica knows it. Events API deliveries are not counted
 *     here: Slack does send those again, and they are deduplicated on `event_id` (app.ts);
 *   - workspace: the request must come from the workspace of the bot token (`auth.test`: `team_id`; for
 *     an Enterprise Grid org-wide install, its `enterprise_id`). A distributed app's other installs
 *     and a person from another organization in a Slack Connect channel are refused. The app id is not
 *     compared: `auth.test` does not tell it for a bot token, and a request signed with this app's
 *     signing secret comes from this app.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { type Clock, systemClock, within } from '../../src/clock.js';
import type { RedisClient } from '../../src/redis.js';

/**
 * The largest request body taken (1 MiB, as the alert webhooks): an order of magnitude above a real
 * click or event, a quarter of Bolt's default.
 */
export const SLACK_BODY_LIMIT_BYTES = 1_048_576;

/** How far X-Slack-Request-Timestamp may be from now, either way (Slack's and Bolt's 5 minutes). */
export const SLACK_REQUEST_WINDOW_S = 300;

/**
 * What Bolt's HTTPReceiver logs for a request older than its 5 minutes; a request dated too far ahead
 * gets the same line (it is the same fault: a timestamp outside the window, not a wrong secret).
 */
export const OUT_OF_WINDOW_LINE =
  'Failed to parse and verify the request data: Failed to verify authenticity: x-slack-request-timestamp must differ from system time by no more than 5 minutes or request is stale';

/** What Bolt's HTTPReceiver logs for a body over its limit (said the same when refused before Bolt). */
export function tooLargeLine(limit: number): string {
  return `Request body exceeded the maximum allowed size (limit: ${limit} bytes)`;
}

/** A header's one value (a repeated header is refused by Bolt's check anyway). */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/**
 * Whether the request's X-Slack-Request-Timestamp lies outside the window around `nowMs`. A missing or
 * unreadable timestamp is not judged here: Bolt's check refuses it with its own reason.
 */
export function outsideWindow(req: IncomingMessage, nowMs: number): boolean {
  const raw = header(req, 'x-slack-request-timestamp');
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) return false;
  // In whole seconds, as Bolt compares: a request exactly at the window's edge is taken both ways.
  return Math.abs(Math.floor(nowMs / 1000) - Number(raw)) > SLACK_REQUEST_WINDOW_S;
}

/**
 * The signature and timestamp of a request Bolt verified, carried to `processEvent` as the event's
 * custom properties (`signedRequestOf` is the receiver's `customPropertiesExtractor`).
 */
const signedRequestSchema = z.object({
  slackRequestSignature: z.string().regex(/^v0=[0-9a-f]{1,128}$/),
  slackRequestTimestamp: z.string().regex(/^\d{1,15}$/),
});

/** The receiver's `customPropertiesExtractor`: what the replay check needs of the request. */
export function signedRequestOf(req: IncomingMessage): Record<string, string> {
  const signature = header(req, 'x-slack-signature');
  const timestamp = header(req, 'x-slack-request-timestamp');
  return signature === undefined || timestamp === undefined
    ? {}
    : { slackRequestSignature: signature, slackRequestTimestamp: timestamp };
}

/**
 * How long, real time, the replay check may wait on Redis before it lets the request through: Slack
 * waits 3 s for the answer, and the command's own fault answer (Redis unreachable) must fit in them.
 */
export const REPLAY_CHECK_MS = 500;

/** Remembers each signed command and interaction for its window, in Redis (see the module header). */
export class ReplayGuard {
  constructor(
    private readonly deps: {
      readonly redis: RedisClient;
      readonly keyPrefix: string;
      readonly clock: Clock;
    },
  ) {}

  /**
   * Whether this delivery repeats one already taken: a request Bolt verified over HTTP that is not an
   * Events API delivery, whose timestamp and signature were seen before. The first one is recorded.
   * Socket Mode envelopes carry no signature and are not judged.
   */
  async replayed(customProperties: unknown, body: unknown): Promise<boolean> {
    const signed = signedRequestSchema.safeParse(customProperties);
    if (!signed.success) return false;
    if ((body as { type?: unknown } | null)?.type === 'event_callback') return false;
    const { slackRequestSignature: signature, slackRequestTimestamp: timestamp } = signed.data;
    // Until the request falls out of the window (it was at most the window ahead of now).
    const ttlMs = Math.max(
      1,
      Number(timestamp) * 1000 + SLACK_REQUEST_WINDOW_S * 1000 - this.deps.clock.now(),
    );
    const key = `${this.deps.keyPrefix}slack:request:${timestamp}:${signature.slice(3)}`;
    // Fails open: replay protection stands behind the signature and the 5-minute window, and a Redis
    // that cannot answer (down, or hung) must not cost the person the answer Slack waits 3 s for. The
    // command or click then says itself that Redis is unreachable (docs/jobs.md, When Redis is
    // unreachable) and changes nothing; one that needs no Redis is not held up by it.
    const first = await within(
      systemClock,
      REPLAY_CHECK_MS,
      this.deps.redis.set(key, '1', 'PX', ttlMs, 'NX').catch(() => 'unknown' as const),
      'unknown' as const,
    );
    return first === null;
  }
}

/** The workspace of the bot token, as `auth.test` answered. */
export interface SlackWorkspace {
  readonly teamId?: string;
  readonly enterpriseId?: string;
  /** An Enterprise Grid org-wide install: every workspace of `enterpriseId` is its own. */
  readonly orgInstall: boolean;
}

const slackId = z.string().min(1).nullish().catch(undefined);

const authTestSchema = z.object({
  team_id: slackId,
  enterprise_id: slackId,
  is_enterprise_install: z.boolean().nullish().catch(undefined),
});

/** The workspace `auth.test` named (undefined when it named none a request could be checked against). */
export function workspaceOf(answer: unknown): SlackWorkspace | undefined {
  const parsed = authTestSchema.safeParse(answer);
  if (!parsed.success) return undefined;
  const { team_id: teamId, enterprise_id: enterpriseId, is_enterprise_install: org } = parsed.data;
  const workspace: SlackWorkspace = {
    ...(teamId ? { teamId } : {}),
    ...(enterpriseId ? { enterpriseId } : {}),
    orgInstall: org === true,
  };
  if (workspace.teamId === undefined && !(workspace.orgInstall && workspace.enterpriseId !== undefined))
    return undefined;
  return workspace;
}

/** The fields of a command, interaction or event envelope that say where it comes from. */
const originSchema = z.object({
  // Slash commands and event envelopes.
  team_id: slackId,
  enterprise_id: slackId,
  // Interactivity: the workspace, the person's own workspace, the organization.
  team: z.object({ id: slackId, enterprise_id: slackId }).nullish().catch(undefined),
  user: z.object({ team_id: slackId }).nullish().catch(undefined),
  enterprise: z.object({ id: slackId }).nullish().catch(undefined),
  // Events: the installation the event is delivered for (a shared channel's event names the
  // workspace it happened in as `team_id`).
  authorizations: z
    .array(z.object({ team_id: slackId, enterprise_id: slackId }))
    .nullish()
    .catch(undefined),
});

/** Where a request comes from: every workspace it names, and its organization. */
export interface SlackOrigin {
  readonly teams: readonly string[];
  readonly enterprise?: string;
}

export function originOf(body: unknown): SlackOrigin {
  const parsed = originSchema.safeParse(body);
  if (!parsed.success) return { teams: [] };
  const b = parsed.data;
  const installation = b.authorizations?.[0];
  const teams =
    installation !== undefined
      ? [installation.team_id ?? b.team_id]
      : [b.team_id, b.team?.id, b.user?.team_id];
  const enterprise =
    installation?.enterprise_id ?? b.enterprise_id ?? b.enterprise?.id ?? b.team?.enterprise_id ?? undefined;
  return {
    teams: [...new Set(teams.filter((t): t is string => typeof t === 'string' && t !== ''))],
    ...(enterprise ? { enterprise } : {}),
  };
}

/**
 * Whether a request from `origin` is the bot's own workspace's: every workspace it names is the bot
 * token's (a click names the workspace and the clicker's own: someone from another organization in a
 * Slack Connect channel names theirs), or, for an org-wide install, its organization is the bot's.
 * A request that names no workspace is not.
 */
export function fromOwnWorkspace(ours: SlackWorkspace | undefined, origin: SlackOrigin): boolean {
  if (ours === undefined) return false;
  if (ours.orgInstall && ours.enterpriseId !== undefined && origin.enterprise === ours.enterpriseId)
    return true;
  return ours.teamId !== undefined && origin.teams.length > 0 && origin.teams.every((t) => t === ours.teamId);
}

/** What the person is told (only they see it) when their request comes from another workspace. */
export const OTHER_WORKSPACE_TEXT =
  'You are not permitted to use Switchyard here: it acts only for people of the Slack workspace it is installed in, ' +
  'and this came from another workspace or organization (someone from a partner company in a Slack Connect channel, say). Nothing was changed.';
