/**
 * handlers/slack/guard.ts, the workspace rule on its own: which workspace `auth.test` names for the bot
 * token (a workspace install, an Enterprise Grid org-wide install, or none), and which requests are
 * that workspace's — every workspace a request names must be it, or, for an org-wide install, its
 * organization must be the bot's. The HTTP side (size, window, replays, refusals) is in app.test.ts.
 */

import { type AddressInfo, createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  fromOwnWorkspace,
  originOf,
  REPLAY_CHECK_MS,
  ReplayGuard,
  type SlackWorkspace,
  workspaceOf,
} from '../../handlers/slack/guard.js';
import { systemClock } from '../../src/clock.js';

/** `auth.test` as Slack answers it for a bot token (the fake Slack's answer). */
const WORKSPACE_ANSWER = {
  ok: true,
  url: 'https://acme.slack.com/',
  team: 'Acme',
  user: 'switchyard',
  team_id: 'T0ACME',
  user_id: 'U0BOT',
  bot_id: 'B0BOT',
  is_enterprise_install: false,
};

const command = (team: string, enterprise?: string) => ({
  command: '/rollback',
  team_id: team,
  user_id: 'U0ALICE',
  ...(enterprise === undefined ? {} : { enterprise_id: enterprise }),
});

const click = (team: string | null, userTeam: string, enterprise?: string) => ({
  type: 'block_actions',
  team: team === null ? null : { id: team, domain: 'x' },
  user: { id: 'U0ALICE', team_id: userTeam },
  enterprise: enterprise === undefined ? null : { id: enterprise, name: 'Org' },
  is_enterprise_install: team === null,
});

describe('workspaceOf', () => {
  it('reads the workspace of a bot token, and of an org-wide install its organization', () => {
    expect(workspaceOf(WORKSPACE_ANSWER)).toEqual({ teamId: 'T0ACME', orgInstall: false });
    expect(
      workspaceOf({
        ...WORKSPACE_ANSWER,
        team_id: 'T0ACME',
        enterprise_id: 'E0ORG',
        is_enterprise_install: true,
      }),
    ).toEqual({ teamId: 'T0ACME', enterpriseId: 'E0ORG', orgInstall: true });
    expect(
      workspaceOf({
        ...WORKSPACE_ANSWER,
        team_id: null,
        enterprise_id: 'E0ORG',
        is_enterprise_install: true,
      }),
    ).toEqual({ enterpriseId: 'E0ORG', orgInstall: true });
  });

  it('names nothing when Slack named neither a workspace nor, for an org-wide install, an organization', () => {
    expect(workspaceOf({ ok: true })).toBeUndefined();
    expect(workspaceOf({ ok: true, team_id: '', enterprise_id: 'E0ORG' })).toBeUndefined();
    expect(workspaceOf(undefined)).toBeUndefined();
  });
});

describe('fromOwnWorkspace', () => {
  const ours: SlackWorkspace = { teamId: 'T0ACME', orgInstall: false };

  it("takes the bot token's workspace's commands, clicks and events", () => {
    expect(fromOwnWorkspace(ours, originOf(command('T0ACME')))).toBe(true);
    expect(fromOwnWorkspace(ours, originOf(click('T0ACME', 'T0ACME')))).toBe(true);
    expect(fromOwnWorkspace(ours, originOf({ type: 'event_callback', team_id: 'T0ACME', event: {} }))).toBe(
      true,
    );
  });

  it('refuses another workspace, and a person of another organization clicking in a Slack Connect channel', () => {
    expect(fromOwnWorkspace(ours, originOf(command('TEVILCORP')))).toBe(false);
    expect(fromOwnWorkspace(ours, originOf(click('TEVILCORP', 'TEVILCORP')))).toBe(false);
    expect(fromOwnWorkspace(ours, originOf(click('T0ACME', 'TPARTNER')))).toBe(false);
  });

  it('refuses a request that names no workspace, and any request when the bot’s workspace is unknown', () => {
    expect(fromOwnWorkspace(ours, originOf({ command: '/rollback', user_id: 'U0ALICE' }))).toBe(false);
    expect(fromOwnWorkspace(undefined, originOf(command('T0ACME')))).toBe(false);
  });

  it('an event is judged by the installation it is delivered for, not the workspace it happened in', () => {
    // A message in a channel shared with another organization: Slack names the workspace it was posted
    // in as `team_id`, and the installation it is delivered to in `authorizations`.
    const shared = {
      type: 'event_callback',
      team_id: 'TPARTNER',
      authorizations: [{ team_id: 'T0ACME', enterprise_id: null, is_bot: true }],
      event: {},
    };
    expect(fromOwnWorkspace(ours, originOf(shared))).toBe(true);
    const elsewhere = { ...shared, team_id: 'T0ACME', authorizations: [{ team_id: 'TEVILCORP' }] };
    expect(fromOwnWorkspace(ours, originOf(elsewhere))).toBe(false);
  });

  it('an org-wide install takes every workspace of its organization, and no other organization', () => {
    const org: SlackWorkspace = { enterpriseId: 'E0ORG', orgInstall: true };
    // An org-wide install's clicks carry no workspace (`team: null`), the person's own and the org.
    expect(fromOwnWorkspace(org, originOf(click(null, 'T0SALES', 'E0ORG')))).toBe(true);
    expect(fromOwnWorkspace(org, originOf(command('T0SALES', 'E0ORG')))).toBe(true);
    expect(fromOwnWorkspace(org, originOf(click(null, 'T0EVIL', 'E0EVILORG')))).toBe(false);
    expect(fromOwnWorkspace(org, originOf(click('T0SALES', 'T0SALES')))).toBe(false);
  });

  it('a workspace install in an Enterprise Grid org does not take the org’s other workspaces', () => {
    const gridWorkspace: SlackWorkspace = { teamId: 'T0ACME', enterpriseId: 'E0ORG', orgInstall: false };
    expect(fromOwnWorkspace(gridWorkspace, originOf(command('T0ACME', 'E0ORG')))).toBe(true);
    expect(fromOwnWorkspace(gridWorkspace, originOf(command('T0SALES', 'E0ORG')))).toBe(false);
  });
});

describe('ReplayGuard when Redis cannot answer', () => {
  const signed = (timestamp: number) => ({
    slackRequestSignature: `v0=${'ab'.repeat(32)}`,
    slackRequestTimestamp: String(timestamp),
  });
  const commandBody = { command: '/rollback', team_id: 'T0ACME' };

  it('lets a signed command through at once when Redis refuses the connection (fails open)', async () => {
    // A port nothing listens on: the fail-fast client rejects the SET at once.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const redis = new Redis({
      port,
      host: '127.0.0.1',
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    redis.on('error', () => undefined);
    try {
      const guard = new ReplayGuard({ redis, keyPrefix: 'sy:test:', clock: systemClock });
      const now = Math.floor(Date.now() / 1000);
      expect(await guard.replayed(signed(now), commandBody)).toBe(false);
    } finally {
      redis.disconnect();
    }
  });

  it('does not hold the answer past REPLAY_CHECK_MS when Redis accepts the connection and never answers', async () => {
    // A socket that takes every byte and answers none: a hung Redis.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    // (Its connection never becomes ready either: the SET waits in the client's queue, as commands do
    // while a hung Redis's connection is being set up.)
    const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
    redis.on('error', () => undefined);
    try {
      const guard = new ReplayGuard({ redis, keyPrefix: 'sy:test:', clock: systemClock });
      const now = Math.floor(Date.now() / 1000);
      const asked = guard.replayed(signed(now), commandBody);
      // Without the cap the SET waits for an answer that never comes: the test would time out.
      expect(await asked).toBe(false);
      expect(REPLAY_CHECK_MS).toBeLessThan(3_000);
    } finally {
      redis.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
