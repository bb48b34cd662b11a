/**
 * Seeded random scripts of deployment notices handled by two replicas (two notices services on one
 * Redis, the embedded local platform on a ManualClock, one recording Slack poster shared by both),
 * checked after every step against rules of docs/notices.md. A script mixes pushes (ready or failing
 * builds, now and then of another branch) to production and preview, rollbacks, promotes and resumes
 * made on the platform directly (the dashboard), rollbacks and promotes made by Switchyard (an audit
 * `started` entry before the move and `succeeded` after it, as the switch processor writes them),
 * operator stops, clock steps (seconds to minutes; past the 30-minute standby rule; past a reminder
 * slot; past 6 hours), one replica stopped (now and then while events are under way) and a new one
 * started, and a post or a closing edit that fails once with a fault that may pass. Each script gets
 * its own notices configuration (events selected, reminders, working hours, preview on or off).
 *
 * Invariants (docs/notices.md): each platform event's notice is posted at most once across the
 * replicas, and exactly once when the rules call for one; "ready but not live" only for a deployment
 * that became ready while its environment was rolled back (same branch), never for a reactivated
 * deployment such as Switchyard's own switch target; a move Switchyard made is never announced; reminders only
 * while rolled back, one per slot, never before the first; every "ready but not live" notice and
 * reminder is edited closed exactly once after its period ends and never while it lasts; nothing is
 * posted for an event type (or an environment) the configuration does not select; nothing is given up.
 *
 * A failure names the seed and the script so far: RANDOM_SEED=<n> replays that script alone
 * (NOTICES_SCRIPTS=<k> runs k scripts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { NoticeKind, NoticeOutcome } from '../../src/notices.js';
import type { ActingUser } from '../../src/permissions.js';
import type { PlatformEvent } from '../../src/platform/port.js';
import type { MessageRef } from '../../src/progress.js';
import type { MessageView } from '../../src/views/types.js';
import { mulberry32 } from '../support/random.js';
import {
  BUILD_MS,
  createWorld,
  FlakyPoster,
  HOUR,
  idleAll,
  type StartedNotices,
  type World,
} from './world.js';

const MIN = 60_000;
const STEPS = 40;
const SCRIPTS = 10;
const ENVS = ['production', 'preview'] as const;
type Env = (typeof ENVS)[number];

let w: World | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const alice: ActingUser = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };

/** The shared Slack poster; counts the posts it failed (each then retried after 5 s). */
class FailOncePoster extends FlakyPoster {
  failures = 0;
  /** Titles of the posts that failed. */
  readonly failed = new Set<string>();
  override async post(channel: string, view: MessageView): Promise<MessageRef> {
    try {
      return await super.post(channel, view);
    } catch (e) {
      this.failures += 1;
      this.failed.add(view.title);
      throw e;
    }
  }
  /** The next `failEdits` edits fail with a fault that may pass too. */
  failEdits = 0;
  override async update(ref: MessageRef, view: MessageView): Promise<void> {
    if (this.failEdits > 0) {
      this.failEdits -= 1;
      this.failures += 1;
      throw new Error('503 from the chat API');
    }
    await super.update(ref, view);
  }
}

/** The notices configuration of one environment in one script. */
interface EnvSettings {
  readonly enabled: boolean;
  readonly events: readonly string[];
  /** ms; 0: no reminders. */
  readonly every: number;
  readonly hours?: readonly [number, number];
}

/** A rolled-back period as the platform made it: rolled back to `to` at `since`, until it ended. */
interface Period {
  readonly env: Env;
  readonly to: string;
  readonly since: number;
  /** How many posts and edits the poster had received when the period began and ended. */
  readonly startPost: number;
  endPost?: number;
  endUpdate?: number;
}

/** A platform event as the script saw it, with the notice the rules call for. */
interface SeenEvent {
  readonly event: PlatformEvent;
  /** The notice's claim key (docs/notices.md: `claim:<env>:<event type>:<deployment>:<event time>`). */
  readonly key: string;
  /** The notice kind expected, or undefined for none; `why` says which rule decided. */
  readonly expect: NoticeKind | undefined;
  readonly why: string;
  /** The rolled-back period in force when it happened (for "ready but not live"). */
  readonly period: Period | undefined;
}

/** Which `events` name (or reminders) a notice kind belongs to. */
function selects(kind: NoticeKind): string {
  return kind === 'ready_not_live' ? 'ready' : kind;
}

function randomSettings(rnd: () => number, env: Env): EnvSettings {
  const names = ['ready', 'failed', 'traffic_moved', 'standby', 'stopped'];
  const events = names.filter(() => rnd() < 0.7);
  const every = [HOUR, 4 * HOUR, 4 * HOUR, env === 'preview' ? 0 : 2 * HOUR][Math.floor(rnd() * 4)] ?? HOUR;
  const hours: [number, number] | undefined = rnd() < 0.3 ? [9, 17] : undefined;
  return {
    enabled: env === 'production' || rnd() < 0.7,
    events,
    every,
    ...(hours === undefined ? {} : { hours }),
  };
}

async function runScript(seed: number, steps: number): Promise<void> {
  const rnd = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => {
    const x = xs[Math.floor(rnd() * xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  };
  const settings: Record<Env, EnvSettings> = {
    production: randomSettings(rnd, 'production'),
    preview: randomSettings(rnd, 'preview'),
  };
  const log: string[] = [`config ${JSON.stringify(settings)}`];
  const world = await createWorld({
    environments: Object.fromEntries(
      ENVS.map((env) => {
        const s = settings[env];
        return [
          env,
          {
            notices: {
              enabled: s.enabled,
              events: s.events,
              reminderEvery: s.every,
              ...(s.hours === undefined ? {} : { workingHoursUtc: s.hours }),
            },
          },
        ];
      }),
    ),
  });
  w = world;
  const slack = new FailOncePoster('slack', world.clock, 0);
  const services: StartedNotices[] = [];
  let live: StartedNotices[] = [];
  const start = async () => {
    const s = await world.notices({ posters: [slack] });
    services.push(s);
    live.push(s);
  };

  // ── the script's own record of what happened on the platform ──
  const claimKey = (...parts: (string | number)[]) => `${world.prefix}:notices:claim:${parts.join(':')}`;
  const events: SeenEvent[] = [];
  const eventsByKey = new Map<string, SeenEvent>();
  const periods: Period[] = [];
  const openPeriod = new Map<Env, Period>();
  /** Deployments pushed by the script whose build has not reported ready yet. */
  const building = new Set<string>();
  /** The move a Switchyard switch under way will make (its audit entries say so). */
  let ownMove: { env: string; to: string; via: string } | undefined;
  const endPeriod = (env: Env) => {
    const p = openPeriod.get(env);
    if (p === undefined) return;
    p.endPost = slack.posts.length;
    p.endUpdate = slack.updates.length;
    openPeriod.delete(env);
  };
  const expectFor = (env: Env, kind: NoticeKind, why: string) => {
    const s = settings[env];
    if (!s.enabled) return { expect: undefined, why: `${why}; notices off` };
    if (!s.events.includes(selects(kind)))
      return { expect: undefined, why: `${why}; ${selects(kind)} not selected` };
    return { expect: kind, why };
  };
  world.platform.subscribe((event) => {
    const env = event.environment as Env;
    const state = world.platform.dump();
    const envState = state.environments.find((e) => e.slug === env);
    let key: string;
    let decided: { expect: NoticeKind | undefined; why: string };
    if (event.type === 'traffic.moved') {
      key = claimKey(env, event.type, event.to, event.at);
      const own = ownMove?.env === env && ownMove.to === event.to && ownMove.via === event.via;
      if (own) ownMove = undefined;
      endPeriod(env);
      if (event.via === 'rollback') {
        const p: Period = { env, to: event.to, since: event.at, startPost: slack.posts.length };
        periods.push(p);
        openPeriod.set(env, p);
      }
      if (event.via === 'deploy') decided = { expect: undefined, why: 'an automatic deploy' };
      else if (own) decided = { expect: undefined, why: "Switchyard's own move" };
      else decided = expectFor(env, 'traffic_moved', `a ${event.via} outside Switchyard`);
    } else {
      key = claimKey(env, event.type, event.deploymentId, event.at);
      if (event.type === 'deployment.building') decided = { expect: undefined, why: 'building' };
      else if (event.type === 'deployment.failed') {
        building.delete(event.deploymentId);
        decided = expectFor(env, 'failed', 'a failed build');
      } else if (event.type === 'deployment.standby') decided = expectFor(env, 'standby', 'standby');
      else if (event.type === 'deployment.stopped') decided = expectFor(env, 'stopped', 'stopped');
      else if (!building.delete(event.deploymentId)) {
        decided = { expect: undefined, why: 'a standby deployment reactivated' };
      } else {
        const dep = state.deployments.find((d) => d.id === event.deploymentId);
        const current = state.deployments.find((d) => d.id === envState?.currentDeploymentId);
        const held = envState?.rolledBack === true && current !== undefined && current.branch === dep?.branch;
        decided = held
          ? expectFor(env, 'ready_not_live', `ready while rolled back to ${current.id}`)
          : expectFor(env, 'ready', 'ready, not held back by a rollback');
      }
    }
    const seen: SeenEvent = { event, key, ...decided, period: openPeriod.get(env) };
    events.push(seen);
    eventsByKey.set(key, seen);
  });

  await start();
  await start();

  /**
   * Moves the clock, lets the platform's time rules run (its maintenance tick) and waits for the
   * replicas, in steps of at most 10 minutes: one jump of hours would run a loop woken on the way only
   * once the clock stood at the end (`ManualClock.advance` does not wait for Redis), so a retry due
   * 5 s after its failure would be found hours old and given up ("not posted within an hour"), which
   * real time never does to a running replica.
   */
  const advance = async (ms: number) => {
    for (let left = ms; left > 0; left -= 10 * MIN) {
      await world.clock.advance(Math.min(left, 10 * MIN));
      await world.platform.settle();
      world.platform.maintain();
      await idleAll(live);
    }
  };
  const snapshot = (env: Env) => world.platform.snapshot(env);
  /** Deployments a switch may target: ready or standby, not the current one. */
  const targets = async (env: Env) => {
    const snap = await snapshot(env);
    return snap.deployments.filter(
      (d) =>
        (d.status === 'ready' || d.status === 'standby') && d.id !== snap.environment.currentDeploymentId,
    );
  };
  const chooseSwitch = async (env: Env) => {
    const snap = await snapshot(env);
    const candidates = await targets(env);
    if (candidates.length === 0) return undefined;
    const action: 'rollback' | 'promote' =
      rnd() < (snap.environment.rolledBack ? 0.4 : 0.75) ? 'rollback' : 'promote';
    return { action, target: pick(candidates).id };
  };

  // ── the invariants ──
  const postsOf = () => {
    const outcomes = services.flatMap((s) => s.outcomes);
    const posted = outcomes.filter(
      (o): o is Extract<NoticeOutcome, { status: 'posted' }> => o.status === 'posted',
    );
    const byMessage = new Map<string, Extract<NoticeOutcome, { status: 'posted' }>>();
    for (const o of posted) {
      for (const ref of o.refs) {
        // A notice's post is reported once, by the replica that made it.
        expect(byMessage.has(ref.messageId), `message ${ref.messageId} reported posted twice`).toBe(false);
        byMessage.set(ref.messageId, o);
      }
    }
    return { byMessage };
  };
  const periodAt = (env: string, postIndex: number) =>
    periods.find(
      (p) => p.env === env && p.startPost <= postIndex && (p.endPost === undefined || postIndex < p.endPost),
    );

  /**
   * A "ready but not live" notice whose first post failed is retried only while its period lasts
   * (docs/notices.md, "Only while true"): when the period ended before the retry, it is dropped.
   */
  const mayBeDropped = (seen: SeenEvent) =>
    seen.expect === 'ready_not_live' &&
    seen.event.type === 'deployment.ready' &&
    slack.failed.has(`${seen.event.deploymentId} is ready but not live`) &&
    seen.period?.endPost !== undefined;
  const check = (final: boolean) => {
    const { byMessage } = postsOf();
    // The poster fails once at a time, with a fault that may pass: nothing is given up.
    const gaveUp = services
      .flatMap((x) => x.outcomes)
      .filter((o) => o.status === 'post_failed' || o.status === 'close_failed');
    expect(gaveUp, 'notices given up').toEqual([]);
    // Every message the poster received was reported as one replica's post (nothing posted unseen).
    expect(byMessage.size).toBe(slack.posts.length);
    const perKey = new Map<string, number>();
    for (const [index, post] of slack.posts.entries()) {
      const o = byMessage.get(post.ref.messageId);
      if (o === undefined) throw new Error(`post ${index} (${post.view.title}) has no posted outcome`);
      perKey.set(o.key, (perKey.get(o.key) ?? 0) + 1);
      const env = o.environment as Env;
      const s = settings[env];
      // Nothing is posted for an environment whose notices are off, or for an event type not selected.
      expect(s.enabled, `${post.view.title}: notices of ${env} are off`).toBe(true);
      if (o.kind === 'reminder') expect(s.every, `${post.view.title}: reminders are off`).toBeGreaterThan(0);
      else expect(s.events, `${post.view.title}: ${selects(o.kind)} not selected`).toContain(selects(o.kind));

      if (o.kind === 'reminder') {
        // Reminders only while rolled back, at most one per slot (one claim per slot), never before slot 1.
        const [to, since, slot] = o.key.slice(claimKey(env, 'reminder').length + 1).split(':');
        const period = periods.find((p) => p.env === env && p.to === to && p.since === Number(since));
        if (period === undefined) throw new Error(`reminder ${o.key} for a period the platform never had`);
        expect(periodAt(env, index), `reminder ${o.key} posted outside its period`).toBe(period);
        expect(Number(slot), `reminder ${o.key} for slot ${slot}`).toBeGreaterThanOrEqual(1);
        expect(post.at, `reminder ${o.key} before its slot`).toBeGreaterThanOrEqual(
          period.since + Number(slot) * s.every,
        );
        continue;
      }
      // An event's notice: of an event that happened, of the kind the rules give it.
      const seen = eventsByKey.get(o.key);
      if (seen === undefined) throw new Error(`${post.view.title}: no platform event has key ${o.key}`);
      expect(o.kind, `${post.view.title} for ${seen.event.type} (${seen.why})`).toBe(seen.expect);
      if (o.kind === 'ready_not_live') {
        // Only while the rolled-back period it was ready in lasts.
        expect(periodAt(env, index), `${post.view.title} posted outside its period`).toBe(seen.period);
      }
    }
    // Each platform event's notice is posted at most once across the replicas (and, once all is
    // settled, exactly once when the rules call for one).
    for (const [key, n] of perKey) expect(n, `${key} posted ${n} times`).toBe(1);
    for (const seen of events) {
      const n = perKey.get(seen.key) ?? 0;
      if (seen.expect === undefined) expect(n, `${seen.key} (${seen.why}) was posted`).toBe(0);
      else if (final && !mayBeDropped(seen)) expect(n, `${seen.key} (${seen.why}) not posted`).toBe(1);
    }
    // Closing: every "ready but not live" notice and reminder is edited once after its period ends,
    // never while it lasts; no other message is edited.
    const closable = new Set<string>();
    for (const [index, post] of slack.posts.entries()) {
      const o = byMessage.get(post.ref.messageId);
      if (o === undefined || (o.kind !== 'reminder' && o.kind !== 'ready_not_live')) continue;
      closable.add(post.ref.messageId);
      const period = periodAt(o.environment, index);
      if (period === undefined) throw new Error(`${post.view.title} posted while not rolled back`);
      const edits = slack.updates
        .map((u, i) => ({ u, i }))
        .filter(({ u }) => u.ref.messageId === post.ref.messageId);
      const what = `${post.view.title} (${o.key}), period ${period.to} since ${period.since}`;
      if (period.endUpdate === undefined) {
        expect(edits, `${what} edited while its period lasts`).toEqual([]);
        continue;
      }
      for (const { i } of edits)
        expect(i, `${what} edited before its period ended`).toBeGreaterThanOrEqual(period.endUpdate);
      expect(edits.length, `${what} edited ${edits.length} times`).toBeLessThanOrEqual(1);
      if (final) {
        expect(edits.length, `${what} not closed after its period ended`).toBe(1);
        const closed = edits[0]?.u.view;
        expect(closed?.buttons, `${what} closed with buttons`).toEqual([]);
        expect(closed?.title).not.toBe(post.view.title);
      }
    }
    for (const u of slack.updates) {
      expect(closable.has(u.ref.messageId), `edit of ${u.ref.messageId} (${u.view.title})`).toBe(true);
    }
    if (final) {
      // Liveness: a period still going, long past its first slot, has had a reminder.
      for (const p of openPeriod.values()) {
        const s = settings[p.env];
        if (!s.enabled || s.every === 0 || s.hours !== undefined) continue;
        if (world.clock.now() < p.since + s.every + 6 * MIN) continue;
        const reminders = [...byMessage.values()].filter(
          (o) => o.kind === 'reminder' && o.key.startsWith(claimKey(p.env, 'reminder', p.to, p.since, '')),
        );
        expect(
          reminders.length,
          `no reminder for ${p.env} rolled back to ${p.to} since ${p.since}`,
        ).toBeGreaterThan(0);
      }
    }
  };

  let step = 0;
  try {
    check(false);
    for (step = 1; step <= steps; step++) {
      const failuresBefore = slack.failures;
      const env: Env = rnd() < 0.75 ? 'production' : 'preview';
      const r = rnd();
      if (r < 0.22) {
        const fail = rnd() < 0.25;
        const branch = rnd() < 0.15 ? 'feature-x' : undefined;
        log.push(`${step}. push to ${env}${fail ? ' (build fails)' : ''}${branch ? ` on ${branch}` : ''}`);
        const d = await world.platform.push({
          environment: env,
          ...(fail ? { fail } : {}),
          ...(branch === undefined ? {} : { branch }),
        });
        building.add(d.id);
        await advance(BUILD_MS);
      } else if (r < 0.52) {
        // A switch a second after the last step (two moves in one millisecond would share a claim key).
        await advance(1_000);
        const own = rnd() < 0.45;
        const snap = await snapshot(env);
        const currentId = snap.environment.currentDeploymentId;
        if (!own && snap.environment.rolledBack && currentId !== undefined && rnd() < 0.3) {
          log.push(`${step}. resume automatic deploys on ${env} (dashboard)`);
          await world.switchDirectly('promote', env, currentId, [], 'Dana (dashboard)');
          // A resume moves no traffic and sends no event: the period ends here.
          endPeriod(env);
          await idleAll(live);
        } else {
          const chosen = await chooseSwitch(env);
          if (chosen === undefined) {
            log.push(`${step}. (no switch target on ${env})`);
          } else if (!own) {
            log.push(`${step}. ${chosen.action} ${env} to ${chosen.target} (dashboard)`);
            await world.switchDirectly(chosen.action, env, chosen.target, live, 'Dana (dashboard)');
          } else {
            log.push(`${step}. ${chosen.action} ${env} to ${chosen.target} (Switchyard)`);
            const run = {
              environment: env,
              action: chosen.action,
              actor: alice,
              jobId: `switch-plan_${seed}_${step}`,
              planId: `plan_${seed}_${step}`,
              targetId: chosen.target,
              ...(currentId === undefined ? {} : { fromId: currentId }),
            };
            await world.audit.append({ ...run, at: world.clock.now(), event: 'started' });
            ownMove = { env, to: chosen.target, via: chosen.action };
            await world.switchDirectly(chosen.action, env, chosen.target, live, 'Alice (Switchyard)');
            await world.audit.append({ ...run, at: world.clock.now(), event: 'succeeded' });
            await idleAll(live);
          }
        }
      } else if (r < 0.58) {
        const candidates = await targets(env);
        if (candidates.length === 0) log.push(`${step}. (nothing to stop on ${env})`);
        else {
          const d = pick(candidates);
          log.push(`${step}. stop ${d.id} on ${env}`);
          await world.platform.stop(d.id);
          await idleAll(live);
        }
      } else if (r < 0.82) {
        const every = settings.production.every || 4 * HOUR;
        const ms = pick([
          int(1, 600) * 1000,
          int(1, 600) * 1000,
          31 * MIN,
          every + int(1, 30) * MIN,
          6 * HOUR + int(0, 60) * MIN,
        ]);
        log.push(`${step}. clock +${ms / 1000}s`);
        await advance(ms);
      } else if (r < 0.9) {
        if (live.length === 2) {
          const i = int(0, 1);
          const stopped = live[i];
          const busy = rnd() < 0.5;
          log.push(
            `${step}. stop replica ${services.indexOf(stopped as StartedNotices)}${busy ? ' right after a push to production ended (its events under way)' : ''}`,
          );
          if (busy) {
            const d = await world.platform.push({ environment: 'production' });
            building.add(d.id);
            await world.clock.advance(BUILD_MS);
          }
          live = live.filter((s) => s !== stopped);
          await stopped?.stop();
          await idleAll(live);
        } else {
          log.push(`${step}. start replica ${services.length}`);
          await start();
          await idleAll(live);
        }
      } else {
        if (rnd() < 0.7) {
          log.push(`${step}. the next post fails once (503)`);
          slack.fails = 1;
        } else {
          log.push(`${step}. the next edit fails once (503)`);
          slack.failEdits = 1;
        }
      }
      // A post that failed is retried after 5 s: now and then let that happen before the next step;
      // else the next step may end its period first (a "ready but not live" retry is then dropped).
      if (slack.failures > failuresBefore && rnd() < 0.5) {
        log.push(`${step}. (a post failed: clock +10s for its retry)`);
        await advance(10_000);
      }
      check(false);
    }
    // Let every check and retry run: rechecks every 5 minutes close the periods a resume ended.
    log.push('end. clock +6m, +6m');
    slack.fails = 0;
    slack.failEdits = 0;
    await advance(6 * MIN);
    await advance(6 * MIN);
    check(true);
  } catch (e) {
    const prefix = `seed ${seed} (RANDOM_SEED=${seed} replays it), step ${step}`;
    const message = `${prefix}: ${e instanceof Error ? e.message : String(e)}\nscript:\n${log.join('\n')}`;
    if (e instanceof Error) {
      e.message = message;
      throw e;
    }
    throw new Error(message);
  }
}

const seeds =
  process.env.RANDOM_SEED !== undefined
    ? [Number(process.env.RANDOM_SEED)]
    : Array.from({ length: Number(process.env.NOTICES_SCRIPTS ?? SCRIPTS) }, (_, i) => 0x5eed + i * 7919);

describe('deployment notices across two replicas (seeded random scripts)', () => {
  for (const seed of seeds) {
    it(`seed ${seed}: ${STEPS} random steps keep the documented invariants`, async () => {
      await runScript(seed, STEPS);
    });
  }
});
