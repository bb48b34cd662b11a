/**
 * A seeded random test of Flow: scripts of plans, clicks and clock moves by four people with different
 * permissions, on production (two-person rule on) and preview (on for some seeds), over two replicas
 * (two Flows with their own Redis connections and queue producers, one Redis, one local platform), with
 * the same click sometimes delivered to both replicas at once, the queued switches run to their end by
 * a real switch worker now and then, and switches made outside Switchyard (so later plans go stale, and
 * a switch is asked for again after its job ended). Each step's outcome is judged against the plan as it was read before the step (who may
 * act, the two-person rule, expiry, freshness, the documented outcomes); after each step every plan's
 * audit must read coherently and agree with its stored state. A failure prints the seed and the
 * script, to replay it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type SwitchWorker, startSwitchWorker } from '../../jobs/switch-worker.js';
import { type AuditEntry, AuditLog } from '../../src/audit.js';
import { systemClock } from '../../src/clock.js';
import type { PlanAction } from '../../src/domain/types.js';
import {
  type CancelOutcome,
  type ClickOutcome,
  Flow,
  type FlowQueue,
  type PlanOutcome,
} from '../../src/flow.js';
import { silentLogger } from '../../src/log.js';
import { type ActingUser, canAct } from '../../src/permissions.js';
import { OPEN_STATES, type PlanRecord, PlanStore } from '../../src/plan-store.js';
import { type SwitchJobInput, SwitchQueue } from '../../src/queue.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { RecordingReporter } from '../jobs/fixtures/harness.js';
import { redisUrl } from '../support/redis.js';
import {
  alice,
  bob,
  carol,
  createHarness,
  dave,
  type Harness,
  switchDirectly,
  system,
  testConfig,
} from './harness.js';

const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);
const STEPS = 40;
const HOUR = 3_600_000;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Who acts. Production: alice and bob by user id, dave through his Discord role; preview: alice and
 * carol. So each environment has people allowed, people not allowed, and (production) two approvers
 * besides any confirmer.
 */
const PEOPLE: Record<string, ActingUser> = {
  alice,
  bob,
  carol,
  dave: { ...dave, roles: ['333333333333'] },
};
type Who = keyof typeof PEOPLE;
const WHO = Object.keys(PEOPLE) as Who[];
/** Who the allow lists below let in, per environment (the script leans on it; checks use canAct). */
const ALLOWED: Record<string, readonly Who[]> = {
  production: ['alice', 'bob', 'dave'],
  preview: ['alice', 'carol'],
};

function environments(previewRule: boolean): Record<string, unknown> {
  return {
    production: {
      twoPersonRule: true,
      allow: { slack: { users: ['U0ALICE', 'U0BOB'] }, discord: { roles: ['333333333333'] } },
    },
    preview: { twoPersonRule: previewRule, allow: { slack: { users: ['U0ALICE', 'U0CAROL'] } } },
  };
}

/** The switches asked for (the demo project of the local platform); `alert`: an alert's suggestion. */
interface Spec {
  readonly action: PlanAction;
  readonly environment: string;
  readonly target?: string;
  readonly alert?: true;
}
const SPECS: readonly Spec[] = [
  { action: 'rollback', environment: 'production' },
  { action: 'rollback', environment: 'production', target: 'dep_2mc5ty' },
  { action: 'promote', environment: 'production', target: 'dep_3hd7xa' },
  { action: 'rollback', environment: 'preview' },
  { action: 'promote', environment: 'preview', target: 'dep_p1rw4n' },
  { action: 'rollback', environment: 'production', alert: true },
];

type Click = 'confirm' | 'approve' | 'cancel' | 'dismiss';
type Step =
  | { do: 'plan'; who: Who; spec: number }
  /** A click on the spec's latest plan; `both`: the same click delivered to both replicas at once. */
  | { do: Click; who: Who; spec: number; both: boolean; replica: 0 | 1 }
  | { do: 'replan'; who: Who; spec: number }
  /** The clock moves on; `sweep`: the expiry sweep runs after. */
  | { do: 'advance'; ms: number; sweep: boolean }
  /** A worker runs every queued switch to its end. */
  | { do: 'run' }
  /**
   * Someone switches the environment outside Switchyard (to its `pick`-th deployment other than the
   * current one, by id), so that plans made before go stale.
   */
  | { do: 'outside'; environment: string; action: PlanAction; pick: number };

function script(seed: number, n: number): Step[] {
  const rnd = mulberry32(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const who = () => WHO[int(WHO.length)] ?? 'alice';
  const steps: Step[] = [];
  let runs = 0;
  let lastPlanned = 0;
  for (let i = 0; i < n; i++) {
    const r = rnd();
    // Clicks land mostly on the switch asked for last, and mostly by someone allowed there, so that
    // requests get confirmed, approved and queued; the others are refused.
    const spec = rnd() < 0.5 ? lastPlanned : int(SPECS.length);
    const env = SPECS[spec]?.environment ?? 'production';
    const allowedThere = WHO.filter((p) => ALLOWED[env]?.includes(p));
    const clicker = () => (rnd() < 0.7 ? (allowedThere[int(allowedThere.length)] ?? 'alice') : who());
    const replica = int(2) as 0 | 1;
    const both = rnd() < 0.35;
    if (r < 0.18 || i < 2) {
      steps.push({ do: 'plan', who: who(), spec });
      lastPlanned = spec;
    } else if (r < 0.42) steps.push({ do: 'confirm', who: clicker(), spec, both, replica });
    else if (r < 0.62) steps.push({ do: 'approve', who: clicker(), spec, both, replica });
    else if (r < 0.68) steps.push({ do: 'cancel', who: who(), spec, both, replica });
    else if (r < 0.72) steps.push({ do: 'dismiss', who: who(), spec, both, replica });
    else if (r < 0.78) steps.push({ do: 'replan', who: who(), spec });
    else if (r < 0.82)
      steps.push({
        do: 'outside',
        environment: env,
        action: rnd() < 0.5 ? 'rollback' : 'promote',
        pick: int(4),
      });
    else if (r < 0.88 || runs >= 4) {
      const past = rnd() < 0.2;
      steps.push({ do: 'advance', ms: past ? HOUR + 60_000 : 60_000 * (1 + int(20)), sweep: rnd() < 0.5 });
    } else {
      runs++;
      steps.push({ do: 'run' });
    }
  }
  return steps;
}

/** One call of a replica's queue `enqueue`. */
interface Enqueue {
  readonly step: number;
  readonly data: SwitchJobInput;
}

/** The real queue, recording every enqueue Flow makes through it. */
function counted(real: SwitchQueue, log: Enqueue[], step: () => number): FlowQueue {
  return {
    enqueue: async (data) => {
      log.push({ step: step(), data });
      return real.enqueue(data);
    },
    addMessages: (jobId, refs) => real.addMessages(jobId, refs),
    progress: (jobId) => real.progress(jobId),
    ended: (jobId) => real.ended(jobId),
    activeForEnvironment: (environment) => real.activeForEnvironment(environment),
  };
}

const CLICK_OUTCOMES: Record<Click, readonly string[]> = {
  confirm: ['enqueued', 'awaiting_approval', 'refused', 'stale', 'expired', 'cancelled'],
  approve: ['enqueued', 'awaiting_approval', 'refused', 'stale', 'expired', 'cancelled'],
  cancel: ['running', 'refused', 'stale', 'expired', 'cancelled'],
  dismiss: ['running', 'refused', 'stale', 'expired', 'cancelled'],
};

interface World {
  readonly h: Harness;
  readonly replicas: readonly [Flow, Flow];
  readonly config: ReturnType<typeof testConfig>;
  readonly enqueues: Enqueue[];
  /** The step running (what each recorded enqueue is tagged with). */
  readonly box: { stepNo: number };
}

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function world(previewRule: boolean): Promise<World> {
  const enqueues: Enqueue[] = [];
  const envs = environments(previewRule);
  const config = testConfig(envs);
  const box = { stepNo: 0 };
  const h = await createHarness({
    environments: envs,
    queue: (real) => counted(real, enqueues, () => box.stepNo),
  });
  cleanups.push(() => h.close());
  // The second replica: its own Redis connection, plan store, audit log and queue producer.
  const redis2: RedisClient = createRedis(redisUrl());
  const queue2 = new SwitchQueue({
    redisUrl: redisUrl(),
    queueName: h.switchQueue.queueName,
    clock: h.clock,
  });
  cleanups.push(async () => {
    await queue2.close();
    await redis2.quit();
  });
  const replica = new Flow({
    platform: h.platform,
    queue: counted(queue2, enqueues, () => box.stepNo),
    plans: new PlanStore({ redis: redis2, prefix: `${h.prefix}:`, clock: h.clock }),
    audit: new AuditLog(redis2, { prefix: h.prefix }),
    config,
    clock: h.clock,
  });
  return { h, replicas: [h.flow, replica], config, enqueues, box };
}

/** Runs every queued switch to its end with a real worker, driving the platform's clock meanwhile. */
async function runJobs(w: World): Promise<void> {
  const { h } = w;
  const pending = await h.switchQueue.queue.getJobs(['waiting', 'active', 'delayed', 'prioritized']);
  if (pending.length === 0) return;
  const started: SwitchWorker = startSwitchWorker({
    redisUrl: redisUrl(),
    queueName: h.switchQueue.queueName,
    platform: h.platform,
    reporter: new RecordingReporter(),
    // Real time for the worker (its polls and timeouts), as in end-to-end.test.ts; the platform's
    // reactivation runs on the harness's clock, driven below.
    clock: systemClock,
    verify: { timeoutMs: 10_000, intervalMs: 5 },
    lockDurationMs: 10_000,
    lockRetryMs: 50,
    concurrency: 2,
    logger: silentLogger,
    audit: h.audit,
    permissions: { config: w.config },
  });
  try {
    await started.worker.waitUntilReady();
    let ended = false;
    const all = Promise.all(pending.map((j) => h.switchQueue.waitForEnd(j.id ?? '', 60_000))).finally(() => {
      ended = true;
    });
    // The local platform reactivates a standby target on its clock: advance it while it waits on it.
    while (!ended) {
      if (h.clock.pending > 0) await h.clock.advance(1_000);
      else await new Promise<void>((r) => setImmediate(r));
    }
    await all;
  } finally {
    await started.close();
  }
}

/** The plan's audit entries (history only), oldest first. */
async function history(w: World, environment: string): Promise<AuditEntry[]> {
  return (await w.h.audit.recent(environment, 1000)).reverse();
}

function permitted(w: World, who: ActingUser, environment: string): boolean {
  return canAct(who, environment, { config: w.config }).ok;
}

function same(
  a: { surface: string; userId: string } | undefined,
  b: { surface: string; userId: string },
): boolean {
  return a !== undefined && a.surface === b.surface && a.userId === b.userId;
}

function twoPersons(environment: string, previewRule: boolean): boolean {
  return environment === 'production' || previewRule;
}

/** The outcome a click must have, judged on the record read before it (undefined: not decided here). */
function expectedStatus(
  w: World,
  click: Click,
  who: ActingUser,
  pre: PlanRecord | undefined,
  fresh: boolean,
  rule: boolean,
): string | undefined {
  if (pre === undefined) return 'expired';
  if (OPEN_STATES.includes(pre.state) && w.h.clock.now() >= pre.expiresAt) return 'expired';
  if (pre.state === 'cancelled') return 'cancelled';
  if (pre.state === 'stale') return 'stale';
  if (pre.state === 'expired') return 'expired';
  const env = pre.plan.environment;
  const allowed = permitted(w, who, env);
  if (click === 'cancel' || click === 'dismiss') {
    const asker =
      same(who, pre.requestedBy) &&
      pre.alert === undefined &&
      (pre.confirmedBy === undefined || same(pre.confirmedBy, pre.requestedBy));
    const may = allowed || same(pre.confirmedBy, who) || asker;
    if (!may) return 'refused';
    return pre.state === 'enqueued' ? 'running' : 'cancelled';
  }
  if (!allowed) return 'refused';
  if (pre.state === 'enqueued') return 'enqueued';
  if (click === 'confirm') {
    if (pre.state === 'awaiting_approval') return 'awaiting_approval';
    if (!fresh) return 'stale';
    return rule ? 'awaiting_approval' : 'enqueued';
  }
  if (pre.state === 'pending') return 'refused';
  const self =
    same(pre.confirmedBy, who) || (pre.requestedBy.surface !== 'system' && same(pre.requestedBy, who));
  if (rule && self) return 'refused';
  if (!fresh) return 'stale';
  return 'enqueued';
}

/** Whether what the platform shows now is what `record`'s plan was made on (no worker runs in a click). */
async function isFresh(w: World, record: PlanRecord | undefined): Promise<boolean> {
  if (record === undefined) return false;
  const snap = await w.h.platform.snapshot(record.plan.environment);
  return (
    snap.environment.currentDeploymentId === record.plan.expectedCurrent &&
    snap.environment.rolledBack === record.plan.expectedRolledBack
  );
}

/**
 * The history of every plan read coherently, and agrees with its stored record: per request (from its
 * `requested` asked/suggested entry) at most one confirm and one `approved`, none after the request was
 * closed (cancelled, expired, stale); with the two-person rule an `approved` by someone else than the
 * confirmer, after the confirm; as many `approved` entries as enqueues.
 */
async function checkAudit(
  w: World,
  previewRule: boolean,
  records: Map<string, PlanRecord | undefined>,
): Promise<void> {
  const enqueuesByPlan = new Map<string, number>();
  for (const e of w.enqueues) enqueuesByPlan.set(e.data.planId, (enqueuesByPlan.get(e.data.planId) ?? 0) + 1);
  for (const environment of ['production', 'preview']) {
    const rule = twoPersons(environment, previewRule);
    const byPlan = new Map<string, AuditEntry[]>();
    for (const e of await history(w, environment)) {
      if (e.planId === undefined) continue;
      byPlan.set(e.planId, [...(byPlan.get(e.planId) ?? []), e]);
    }
    for (const [planId, entries] of byPlan) {
      const what = (e: AuditEntry) =>
        `${e.event}${e.stage ? `:${e.stage}` : ''}${e.code ? `(${e.code})` : ''}`;
      const story = entries.map(what).join(' → ');
      let approvedTotal = 0;
      let request: { confirmed?: AuditEntry; approved?: AuditEntry; closed?: AuditEntry } | undefined;
      for (const e of entries) {
        const opens = e.event === 'requested' && (e.stage === 'asked' || e.stage === 'suggested');
        if (opens) {
          // A new request under the plan id only once the last one is done with.
          expect(
            request === undefined || request.closed !== undefined || request.approved !== undefined,
            `${planId}: a new request while one was open: ${story}`,
          ).toBe(true);
          request = {};
          continue;
        }
        expect(request, `${planId}: ${what(e)} before any request: ${story}`).toBeDefined();
        if (request === undefined) continue;
        if (e.event === 'requested' && e.stage === 'confirmed') {
          expect(request.confirmed, `${planId}: two confirms in one request: ${story}`).toBeUndefined();
          expect(
            request.closed ?? request.approved,
            `${planId}: confirmed after the request ended: ${story}`,
          ).toBeUndefined();
          expect(rule, `${planId}: a wait for approval without the two-person rule: ${story}`).toBe(true);
          request.confirmed = e;
        } else if (e.event === 'approved') {
          approvedTotal++;
          expect(request.approved, `${planId}: two approvals in one request: ${story}`).toBeUndefined();
          expect(
            request.closed,
            `${planId}: approved after the request was closed: ${story}`,
          ).toBeUndefined();
          if (rule) {
            expect(
              request.confirmed,
              `${planId}: approved without a confirm (two-person rule): ${story}`,
            ).toBeDefined();
            expect(
              same(request.confirmed?.actor, e.actor ?? system),
              `${planId}: the confirmer approved: ${story}`,
            ).toBe(false);
          }
          request.approved = e;
        } else if (request.approved === undefined && (e.event === 'cancelled' || e.event === 'refused')) {
          expect(request.closed, `${planId}: closed twice: ${story}`).toBeUndefined();
          request.closed = e;
        } else if (request.approved === undefined) {
          expect.fail(`${planId}: ${what(e)} in a request not approved: ${story}`);
        }
      }
      expect(approvedTotal, `${planId}: approvals and enqueues differ: ${story}`).toBe(
        enqueuesByPlan.get(planId) ?? 0,
      );
      // The stored record agrees with its request's story.
      const record = records.get(planId);
      if (record === undefined || request === undefined) continue;
      const last = entries[entries.length - 1];
      const says = `${planId} is ${record.state}, audit: ${story}`;
      switch (record.state) {
        case 'pending':
          expect(request.confirmed ?? request.approved ?? request.closed, says).toBeUndefined();
          break;
        case 'awaiting_approval':
          expect(request.confirmed, says).toBeDefined();
          expect(request.approved ?? request.closed, says).toBeUndefined();
          expect(same(record.confirmedBy, request.confirmed?.actor ?? system), says).toBe(true);
          break;
        case 'enqueued':
          expect(request.approved, says).toBeDefined();
          expect(record.jobId, says).toBeDefined();
          break;
        case 'cancelled':
          expect(request.closed?.event, says).toBe('cancelled');
          expect(request.closed?.code, says).not.toBe('expired');
          break;
        case 'expired':
          expect(last?.event, says).toBe('cancelled');
          expect(last?.code, says).toBe('expired');
          break;
        case 'stale':
          expect(request.closed?.event, says).toBe('refused');
          break;
      }
    }
  }
}

async function runScript(seed: number, steps: readonly Step[]): Promise<void> {
  const previewRule = seed % 2 === 0;
  const w = await world(previewRule);
  const { h } = w;
  const latest = new Map<number, string>();
  const known = new Set<string>();
  /** Enqueues per request (plan id and generation). */
  const perRequest = new Map<string, number>();
  const raw = (planId: string) => h.plans.get(planId);
  /** Every known plan's record as the last step left it. */
  let records = new Map<string, PlanRecord | undefined>();
  /** Plans whose alert suggestion a permitted person dismissed (alerts no longer suggest them). */
  const dismissed = new Set<string>();

  /**
   * A request joins the plan of the same switch while it is live (open and in its time, or queued
   * and its job not ended), restarting its time; otherwise it is a new request (a new generation),
   * pending. An alert's suggestion of a switch someone permitted dismissed is refused.
   */
  const checkAsked = async (o: PlanOutcome, alert: boolean, at: string): Promise<void> => {
    if (!o.ok) {
      if (o.refusal.code === 'suggestion_dismissed')
        expect(dismissed.has(String(o.refusal.context?.planId)), `${at}: refused as dismissed`).toBe(true);
      return;
    }
    const id = o.plan.id;
    if (alert) expect(dismissed.has(id), `${at}: a dismissed suggestion made again`).toBe(false);
    const prev = records.get(id);
    const says = `${at}: ${id} was ${prev?.state ?? 'unknown'}, now ${o.record.state} (created ${o.created})`;
    const open = prev !== undefined && OPEN_STATES.includes(prev.state) && h.clock.now() < prev.expiresAt;
    const queued =
      prev?.state === 'enqueued' &&
      prev.jobId !== undefined &&
      !['completed', 'failed'].includes((await h.switchQueue.queue.getJobState(prev.jobId)) ?? '');
    if (open || queued) {
      expect(o.created, says).toBe(false);
      expect(o.record.generation, says).toBe(prev?.generation);
      expect(o.record.state, says).toBe(prev?.state);
      if (open) expect(o.record.expiresAt, says).toBeGreaterThanOrEqual(h.clock.now() + h.plans.ttlMs);
    } else {
      expect(o.created, says).toBe(true);
      expect(o.record.state, says).toBe('pending');
      if (prev !== undefined) expect(o.record.generation, says).not.toBe(prev.generation);
    }
  };

  for (const [i, step] of steps.entries()) {
    w.box.stepNo = i;
    const at = `step ${i} ${JSON.stringify(step)}`;
    const before = w.enqueues.length;
    switch (step.do) {
      case 'plan': {
        const spec = SPECS[step.spec];
        if (spec === undefined) break;
        const asker = spec.alert ? system : (PEOPLE[step.who] ?? alice);
        const o: PlanOutcome = await w.replicas[step.spec % 2 === 0 ? 0 : 1].plan(
          asker,
          spec.action,
          spec.environment,
          spec.target,
          spec.alert
            ? { alert: { source: 'alertmanager', title: `errors up (${seed})` }, unlessDismissed: true }
            : {},
        );
        await checkAsked(o, spec.alert === true, at);
        if (o.ok) {
          latest.set(step.spec, o.plan.id);
          known.add(o.plan.id);
        }
        break;
      }
      case 'replan': {
        const planId = latest.get(step.spec);
        if (planId === undefined) break;
        const o = await w.replicas[1].replan(PEOPLE[step.who] ?? alice, planId);
        await checkAsked(o, records.get(planId)?.alert !== undefined, at);
        if (o.ok) {
          latest.set(step.spec, o.plan.id);
          known.add(o.plan.id);
        }
        break;
      }
      case 'advance': {
        await h.clock.advance(step.ms);
        if (step.sweep) await w.replicas[step.ms % 2 === 0 ? 0 : 1].expireDue();
        break;
      }
      case 'run':
        await runJobs(w);
        break;
      case 'outside': {
        const snap = await h.platform.snapshot(step.environment);
        const others = snap.deployments
          .filter((d) => d.id !== snap.environment.currentDeploymentId && d.status !== 'building')
          .map((d) => d.id)
          .sort();
        const target = others[step.pick % Math.max(1, others.length)];
        // The platform may refuse the move (say a rollback to a deployment newer than the current
        // one): then nothing moved, which is fine too.
        if (target !== undefined)
          await switchDirectly(h, step.action, step.environment, target).catch(() => undefined);
        break;
      }
      default: {
        const planId = latest.get(step.spec);
        if (planId === undefined) break;
        const who = PEOPLE[step.who] ?? alice;
        const pre = await raw(planId);
        const environment = pre?.plan.environment ?? SPECS[step.spec]?.environment ?? 'production';
        const rule = twoPersons(environment, previewRule);
        const fresh = await isFresh(w, pre);
        const historyBefore = await history(w, environment);
        const refusalsBefore = await h.audit.refusals(environment, 1000);
        const click = (f: Flow): Promise<ClickOutcome | CancelOutcome> =>
          step.do === 'confirm'
            ? f.confirm(who, planId)
            : step.do === 'approve'
              ? f.approve(who, planId)
              : step.do === 'cancel'
                ? f.cancel(who, planId)
                : f.dismiss(who, planId);
        const outcomes = step.both
          ? await Promise.all([click(w.replicas[0]), click(w.replicas[1])])
          : [await click(w.replicas[step.replica])];
        const post = await raw(planId);
        const statuses = outcomes.map((o) => o.status);
        const expected = expectedStatus(w, step.do, who, pre, fresh, rule);
        const says = `${at}: ${statuses.join(', ')} on ${pre?.state ?? 'nothing'} → ${post?.state ?? 'nothing'}`;
        for (const s of statuses) expect(CLICK_OUTCOMES[step.do], says).toContain(s);
        // Every delivery of the click answers the same (a double click joins what the first did).
        for (const s of statuses) expect(s, `${says} (expected ${expected})`).toBe(expected);
        const made = w.enqueues.slice(before);
        const won = outcomes.filter((o) => o.status === 'enqueued' && !o.joined);
        expect(made.length, `${says}: enqueues`).toBe(won.length);
        expect(made.length, `${says}: enqueues`).toBeLessThanOrEqual(1);
        for (const e of made) {
          // Only an open request, read before the click, not past its time, by a permitted person.
          expect(pre, says).toBeDefined();
          if (pre === undefined) continue;
          expect(pre.state, says).toBe(rule ? 'awaiting_approval' : 'pending');
          expect(step.do, says).toBe(rule ? 'approve' : 'confirm');
          expect(h.clock.now(), says).toBeLessThan(pre.expiresAt);
          expect(permitted(w, who, environment), says).toBe(true);
          expect(e.data.requestId?.startsWith(`${pre.generation}.`), says).toBe(true);
          if (rule) {
            const confirmer = pre.confirmedBy;
            expect(confirmer, says).toBeDefined();
            if (confirmer === undefined) continue;
            expect(same(confirmer, who), says).toBe(false);
            // (Stored without memberships: what let them in at the confirm is `confirmedVia`.)
            expect(permitted(w, { ...confirmer, ...(pre.confirmedVia ?? {}) }, environment), says).toBe(true);
            expect(same(e.data.requestedBy, confirmer), says).toBe(true);
            expect(same(e.data.approvedBy, who), says).toBe(true);
          } else {
            expect(same(e.data.requestedBy, who), says).toBe(true);
          }
          const key = `${planId}/${pre.generation}`;
          perRequest.set(key, (perRequest.get(key) ?? 0) + 1);
          expect(perRequest.get(key), `${says}: a request enqueued twice`).toBe(1);
        }
        // The stored state agrees with the outcome.
        const last = statuses[statuses.length - 1];
        if (statuses.every((s) => s === 'refused')) {
          // A refused click changes nothing but the refusals list (one entry per person and reason).
          expect(post, says).toEqual(pre);
          expect(await history(w, environment), says).toEqual(historyBefore);
          const refusals = await h.audit.refusals(environment, 1000);
          expect(refusals.length - refusalsBefore.length, says).toBeLessThanOrEqual(1);
        } else if (last === 'enqueued' || last === 'running') {
          expect(post?.state, says).toBe('enqueued');
          expect(post?.jobId, says).toBeDefined();
        } else if (last === 'expired') {
          expect(post === undefined || post.state === 'expired', says).toBe(true);
        } else if (last !== undefined) {
          expect(post?.state, says).toBe(last);
        }
        if (
          step.do === 'dismiss' &&
          expected === 'cancelled' &&
          pre !== undefined &&
          OPEN_STATES.includes(pre.state)
        ) {
          // This click closed the plan: a dismissal is remembered only for someone permitted there.
          const remembered = (await h.plans.dismissal(planId)) !== undefined;
          if (!dismissed.has(planId))
            expect(remembered, `${says}: dismissal remembered`).toBe(permitted(w, who, environment));
          if (remembered) dismissed.add(planId);
        }
        if (pre?.state === 'stale' || pre?.state === 'cancelled' || pre?.state === 'expired')
          expect(post, `${says}: a closed plan moved`).toEqual(pre);
      }
    }
    // Nothing but a winning confirm or approval enqueues.
    if (
      step.do === 'plan' ||
      step.do === 'replan' ||
      step.do === 'advance' ||
      step.do === 'run' ||
      step.do === 'outside'
    )
      expect(w.enqueues.length, `${at}: enqueued`).toBe(before);
    // One job per plan id, whatever its state.
    const jobs = await h.jobs();
    expect(new Set(jobs.map((j) => j.planId)).size, `${at}: jobs`).toBe(jobs.length);
    records = new Map<string, PlanRecord | undefined>();
    for (const id of known) records.set(id, await raw(id));
    await checkAudit(w, previewRule, records);
  }
}

describe('Flow under random scripts (two replicas, one Redis)', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}`, async () => {
      const steps = script(seed, STEPS);
      try {
        await runScript(seed, steps);
      } catch (e) {
        const lines = steps.map((s, i) => `  ${i}: ${JSON.stringify(s)}`).join('\n');
        if (e instanceof Error) e.message = `${e.message}\nseed ${seed}, script:\n${lines}`;
        throw e;
      }
    }, 60_000);
  }
});
