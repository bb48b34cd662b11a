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
import { buildPlan } from '../../src/domain/plan.js';
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
import { mulberry32, seedsOr } from '../support/random.js';
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

const SEEDS = seedsOr(Array.from({ length: 20 }, (_, i) => i + 1));
const STEPS = 40;
const HOUR = 3_600_000;

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
  | { do: 'outside'; environment: string; action: PlanAction; pick: number }
  /**
   * Two different clicks (or a click and a request) on the spec's latest plan at once: `a`'s click
   * (see RACES) on replica `replica`, the other side's on the other replica. `hold`: whose first write
   * to the plan waits until the other side is done (a stalled replica: it read the plan, then the
   * other side moved it), or neither (as the two land).
   */
  | {
      do: 'race';
      race: Race;
      spec: number;
      a: Who;
      b: Who;
      c: Who;
      hold: 'none' | 'a' | 'b';
      replica: 0 | 1;
    };

/** One side's move in a race: a click, a request for the same switch (`plan`), or a `replan`. */
interface RaceOp {
  readonly op: Click | 'plan' | 'replan';
  readonly who: Who;
}
/**
 * The races: `a`'s click against the other side's moves (run one after the other on the other replica).
 * `approve/reask`, `approve/reconfirm`: the request is withdrawn and asked for again, and the new one
 * confirmed, while an approval of the old one is under way by the new one's asker or confirmer.
 */
const RACES = {
  'confirm/cancel': (s) => ({ a: { op: 'confirm', who: s.a }, others: [{ op: 'cancel', who: s.b }] }),
  'confirm/dismiss': (s) => ({ a: { op: 'confirm', who: s.a }, others: [{ op: 'dismiss', who: s.b }] }),
  'approve/cancel': (s) => ({ a: { op: 'approve', who: s.a }, others: [{ op: 'cancel', who: s.b }] }),
  'confirm/replan': (s) => ({ a: { op: 'confirm', who: s.a }, others: [{ op: 'replan', who: s.b }] }),
  'approve/approve': (s) => ({ a: { op: 'approve', who: s.a }, others: [{ op: 'approve', who: s.b }] }),
  'confirm/plan': (s) => ({ a: { op: 'confirm', who: s.a }, others: [{ op: 'plan', who: s.b }] }),
  'approve/reask': (s) => ({
    a: { op: 'approve', who: s.a },
    others: [
      { op: 'cancel', who: s.c },
      { op: 'plan', who: s.a },
      { op: 'confirm', who: s.b },
    ],
  }),
  'approve/reconfirm': (s) => ({
    a: { op: 'approve', who: s.a },
    others: [
      { op: 'cancel', who: s.c },
      { op: 'plan', who: s.b },
      { op: 'confirm', who: s.a },
    ],
  }),
} satisfies Record<string, (s: { a: Who; b: Who; c: Who }) => { a: RaceOp; others: readonly RaceOp[] }>;
type Race = keyof typeof RACES;
const RACE_NAMES = Object.keys(RACES) as Race[];
/** Races of an approval (the withdraw-and-ask-again ones twice as often: they need a stalled approval). */
const APPROVAL_RACES: readonly Race[] = [
  'approve/reask',
  'approve/reconfirm',
  'approve/reask',
  'approve/reconfirm',
  'approve/approve',
  'approve/cancel',
];

function script(seed: number, n: number): Step[] {
  const rnd = mulberry32(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const who = () => WHO[int(WHO.length)] ?? 'alice';
  const steps: Step[] = [];
  let runs = 0;
  let lastPlanned = 0;
  /** The confirm the last step was, if it was one (an approval race then races its approval). */
  let confirmed: { spec: number; who: Who } | undefined;
  for (let i = 0; i < n; i++) {
    const after = confirmed;
    confirmed = undefined;
    const r = rnd();
    // Clicks land mostly on the switch asked for last, and mostly by someone allowed there, so that
    // requests get confirmed, approved and queued; the others are refused.
    const spec = rnd() < 0.5 ? lastPlanned : int(SPECS.length);
    const env = SPECS[spec]?.environment ?? 'production';
    const allowedThere = WHO.filter((p) => ALLOWED[env]?.includes(p));
    const clicker = () => (rnd() < 0.7 ? (allowedThere[int(allowedThere.length)] ?? 'alice') : who());
    const replica = int(2) as 0 | 1;
    const both = rnd() < 0.35;
    if (r < 0.16 || i < 2) {
      steps.push({ do: 'plan', who: who(), spec });
      lastPlanned = spec;
    } else if (r < 0.36) {
      confirmed = { spec, who: clicker() };
      steps.push({ do: 'confirm', who: confirmed.who, spec, both, replica });
    } else if (after !== undefined && rnd() < 0.6) {
      // An approval of the request just confirmed, by someone else, raced by a withdrawal and a new
      // request, another approver or a cancel.
      const there = ALLOWED[SPECS[after.spec]?.environment ?? 'production'] ?? [];
      const pick = (not: Who) => {
        const ps = there.filter((p) => p !== not);
        return ps[int(ps.length)] ?? 'alice';
      };
      const a = pick(after.who);
      const race = APPROVAL_RACES[int(APPROVAL_RACES.length)] ?? 'approve/reask';
      const hold = (['none', 'a', 'a', 'a', 'b'] as const)[int(5)] ?? 'none';
      steps.push({ do: 'race', race, spec: after.spec, a, b: pick(a), c: pick(a), hold, replica });
    } else if (r < 0.52) steps.push({ do: 'approve', who: clicker(), spec, both, replica });
    else if (r < 0.57) steps.push({ do: 'cancel', who: who(), spec, both, replica });
    else if (r < 0.61) steps.push({ do: 'dismiss', who: who(), spec, both, replica });
    else if (r < 0.66) steps.push({ do: 'replan', who: who(), spec });
    else if (r < 0.8) {
      const race = RACE_NAMES[int(RACE_NAMES.length)] ?? 'confirm/cancel';
      const a = clicker();
      // Two approvers, or an asker and a confirmer: mostly two different people.
      const others = allowedThere.filter((p) => p !== a);
      const b = rnd() < 0.8 ? (others[int(others.length)] ?? who()) : clicker();
      const hold = (['none', 'a', 'b'] as const)[int(3)] ?? 'none';
      steps.push({ do: 'race', race, spec, a, b, c: clicker(), hold, replica });
    } else if (r < 0.84)
      steps.push({
        do: 'outside',
        environment: env,
        action: rnd() < 0.5 ? 'rollback' : 'promote',
        pick: int(4),
      });
    else if (r < 0.9 || runs >= 4) {
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
  /** Per replica: what its plan store's next transition waits for first (see `gate`). */
  readonly gates: readonly [Gate, Gate];
}

/** Set `wait` and the next transition of the store waits for it (once), before it runs. */
interface Gate {
  wait?: Promise<void> | undefined;
}

function gate(store: PlanStore, g: Gate): void {
  const transition = store.transition.bind(store);
  store.transition = async (...args: Parameters<PlanStore['transition']>) => {
    const wait = g.wait;
    g.wait = undefined;
    if (wait !== undefined) await wait;
    return transition(...args);
  };
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
  const plans2 = new PlanStore({ redis: redis2, prefix: `${h.prefix}:`, clock: h.clock });
  const gates: [Gate, Gate] = [{}, {}];
  gate(h.plans, gates[0]);
  gate(plans2, gates[1]);
  const replica = new Flow({
    platform: h.platform,
    queue: counted(queue2, enqueues, () => box.stepNo),
    plans: plans2,
    audit: new AuditLog(redis2, { prefix: h.prefix }),
    config,
    clock: h.clock,
  });
  return { h, replicas: [h.flow, replica], config, enqueues, box, gates };
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

function actorKey(a: { surface: string; userId: string } | undefined): string {
  return a === undefined ? '-' : `${a.surface}:${a.userId}`;
}

/**
 * What a race did: each move's answer (the click's status; for a request `created`, `joined`, or
 * `elsewhere` when it made another plan, or none), the plan's record after it (state, whether it is still the
 * request read before the race or a new one, confirmer, approver), and its enqueues (request,
 * requester, approver).
 */
interface RaceEffect {
  readonly answers: readonly string[];
  readonly record: string;
  readonly enqueues: readonly string[];
}

function recordKey(record: PlanRecord | undefined, pre: PlanRecord): string {
  if (record === undefined) return 'gone';
  const gen = record.generation === pre.generation ? 'read' : 'new';
  return `${record.state} ${gen} confirmed=${actorKey(record.confirmedBy)} approved=${actorKey(record.approvedBy)}`;
}

/**
 * What the moves `order` (each with its index among the race's moves) do applied one after the other
 * to `pre` (no worker runs and the platform does not move meanwhile): each click as `expectedStatus`
 * says; a request joins a live plan, else starts a new request (pending, asked by its asker; a replan
 * of an alert's suggestion keeps its asker and alert), or makes another plan (or none) when a request
 * for the same switch now is not this plan (`lands`: the platform moved).
 */
function serialised(
  w: World,
  order: readonly (RaceOp & { readonly i: number })[],
  pre: PlanRecord,
  world: {
    readonly fresh: boolean;
    readonly lands: boolean;
    readonly rule: boolean;
    readonly jobEnded: boolean;
  },
): RaceEffect {
  const { fresh, lands, rule, jobEnded } = world;
  const now = w.h.clock.now();
  let rec = pre;
  let ended = jobEnded;
  const answers: string[] = [];
  const enqueues: string[] = [];
  for (const o of order) {
    const who = PEOPLE[o.who] ?? alice;
    const open = OPEN_STATES.includes(rec.state);
    if (o.op === 'plan' || o.op === 'replan') {
      const live = (open && now < rec.expiresAt) || (rec.state === 'enqueued' && !ended);
      answers[o.i] = !lands ? 'elsewhere' : live ? 'joined' : 'created';
      if (!lands || live) continue;
      const alert = o.op === 'replan' ? (rec.alert ?? rec.alerts?.[0]?.alert) : undefined;
      const keepAsker = alert !== undefined;
      const {
        confirmedBy: _c,
        confirmedVia: _cv,
        approvedBy: _a,
        approvedVia: _av,
        cancelledBy: _x,
        jobId: _j,
        alert: _al,
        alerts: _als,
        ...base
      } = rec;
      rec = {
        ...base,
        state: 'pending',
        generation: `new after ${rec.generation}`,
        expiresAt: now + w.h.plans.ttlMs,
        requestedBy: keepAsker ? rec.requestedBy : who,
        ...(alert === undefined ? {} : { alert }),
      };
      continue;
    }
    const status = expectedStatus(w, o.op, who, rec, fresh, rule) ?? '?';
    answers[o.i] = status;
    if (open && now >= rec.expiresAt) rec = { ...rec, state: 'expired' };
    else if (!open) continue;
    else if (status === 'stale') rec = { ...rec, state: 'stale' };
    else if (status === 'cancelled') rec = { ...rec, state: 'cancelled' };
    else if (status === 'awaiting_approval' && rec.state === 'pending')
      rec = { ...rec, state: 'awaiting_approval', confirmedBy: who };
    else if (status === 'enqueued') {
      const gen = rec.generation === pre.generation ? 'read' : 'new';
      const requester = o.op === 'confirm' ? who : rec.confirmedBy;
      enqueues.push(`${gen} ${actorKey(requester)} ${o.op === 'approve' ? actorKey(who) : '-'}`);
      rec = {
        ...rec,
        state: 'enqueued',
        ...(o.op === 'confirm' ? { confirmedBy: who } : { approvedBy: who }),
      };
      ended = false;
    }
  }
  return { answers, record: recordKey(rec, pre), enqueues };
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
      case 'race': {
        const planId = latest.get(step.spec);
        const pre = planId === undefined ? undefined : await raw(planId);
        if (planId === undefined || pre === undefined) break;
        const rule = twoPersons(pre.plan.environment, previewRule);
        const fresh = await isFresh(w, pre);
        // Whether a request for the same switch now is this plan (its id also covers, say, whether the
        // target is in standby): else it makes another plan, or none.
        const built = buildPlan(await h.platform.snapshot(pre.plan.environment), {
          action: pre.plan.action,
          target: pre.plan.target.id,
          now: h.clock.now(),
        });
        const lands = built.ok && built.value.id === planId;
        const jobEnded =
          pre.state === 'enqueued' &&
          pre.jobId !== undefined &&
          ['completed', 'failed'].includes((await h.switchQueue.queue.getJobState(pre.jobId)) ?? '');
        const moves = RACES[step.race](step);
        const move = async (f: Flow, o: RaceOp): Promise<string> => {
          const who = PEOPLE[o.who] ?? alice;
          if (o.op === 'plan' || o.op === 'replan') {
            const out =
              o.op === 'plan'
                ? await f.plan(who, pre.plan.action, pre.plan.environment, pre.plan.target.id)
                : await f.replan(who, planId);
            // Refused (the platform moved: say the target is live now) or another plan: no request here.
            if (!out.ok) return 'elsewhere';
            known.add(out.plan.id);
            return out.plan.id !== planId ? 'elsewhere' : out.created ? 'created' : 'joined';
          }
          const click =
            o.op === 'confirm'
              ? f.confirm(who, planId)
              : o.op === 'approve'
                ? f.approve(who, planId)
                : o.op === 'cancel'
                  ? f.cancel(who, planId)
                  : f.dismiss(who, planId);
          return (await click).status;
        };
        const mine = w.replicas[step.replica];
        const theirs = w.replicas[step.replica === 0 ? 1 : 0];
        const sideA = () => move(mine, moves.a);
        const sideB = async () => {
          const answers: string[] = [];
          for (const o of moves.others) answers.push(await move(theirs, o));
          return answers;
        };
        let answers: string[];
        if (step.hold === 'none') {
          const [a, b] = await Promise.all([sideA(), sideB()]);
          answers = [a, ...b];
        } else {
          // The held side reads the plan, then its first write waits until the other side is done.
          const held = step.hold === 'a' ? step.replica : step.replica === 0 ? 1 : 0;
          const g = w.gates[held];
          let release = () => {};
          g.wait = new Promise<void>((r) => {
            release = r;
          });
          const [a, b] =
            step.hold === 'a'
              ? await Promise.all([sideA(), sideB().finally(() => release())])
              : await Promise.all([sideA().finally(() => release()), sideB()]);
          g.wait = undefined;
          answers = [a, ...b];
        }
        const post = await raw(planId);
        const made = w.enqueues.slice(before);
        const actual: RaceEffect = {
          answers,
          record: recordKey(post, pre),
          enqueues: made
            .map((e) => {
              const gen = e.data.requestId?.startsWith(`${pre.generation}.`) ? 'read' : 'new';
              return `${gen} ${actorKey(e.data.requestedBy)} ${actorKey(e.data.approvedBy)}`;
            })
            .sort(),
        };
        // Either way round is a serialisation: the race did what SOME order of its moves, one after the
        // other, does (the click before, between or after the other side's moves).
        const indexed = [{ ...moves.a, i: 0 }, ...moves.others.map((o, k) => ({ ...o, i: k + 1 }))];
        const orders = moves.others.map((_, k) => [
          ...indexed.slice(1, k + 1),
          indexed[0],
          ...indexed.slice(k + 1),
        ]);
        orders.push([...indexed.slice(1), indexed[0]]);
        const allowed = orders.map((order) => {
          const e = serialised(w, order as (RaceOp & { i: number })[], pre, { fresh, lands, rule, jobEnded });
          return {
            order: order.map((o) => `${o?.op}(${o?.who})`).join(' then '),
            ...e,
            enqueues: [...e.enqueues].sort(),
          };
        });
        const says = `${at}: ${pre.state} (fresh ${fresh}) → ${JSON.stringify(actual)}`;
        expect(
          allowed.some(
            (m) =>
              JSON.stringify(m.answers) === JSON.stringify(actual.answers) &&
              m.record === actual.record &&
              JSON.stringify(m.enqueues) === JSON.stringify(actual.enqueues),
          ),
          `${says}, not one of the serialisations:\n${allowed.map((m) => `  ${JSON.stringify(m)}`).join('\n')}`,
        ).toBe(true);
        // And whatever the order: one enqueue per request, none for a request closed or replaced.
        for (const e of made) {
          const gen = e.data.requestId?.split('.')[0] ?? '';
          const key = `${planId}/${gen}`;
          perRequest.set(key, (perRequest.get(key) ?? 0) + 1);
          expect(perRequest.get(key), `${says}: a request enqueued twice`).toBe(1);
          expect(post?.generation, `${says}: a replaced request enqueued`).toBe(gen);
          expect(post?.state, `${says}: a closed request enqueued`).toBe('enqueued');
        }
        if (moves.others.some((o) => o.op === 'dismiss') && (await h.plans.dismissal(planId)) !== undefined)
          dismissed.add(planId);
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
