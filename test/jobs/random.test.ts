/**
 * A seeded random test of the switch queue: scripts over 3 environments of the local platform mix
 * rollbacks and promotes (valid plans, plans kept until another switch made them stale, one request
 * enqueued several times at once, a plan asked for again), pushes, retryable platform faults (5xx,
 * timeouts, a switch request whose answer is lost), refusals, and graceful restarts of one of two
 * workers. The interleaving differs from run to run; what is checked once every job has ended holds
 * for any of them: no two switches of one environment in flight at once, one job per request, one
 * audited end per run whose outcome agrees with what the platform did, and the last switch's traffic
 * list is the real routing. A failure prints the seed and the script, to replay it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SwitchWorker } from '../../jobs/switch-worker.js';
import type { AuditEntry } from '../../src/audit.js';
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import type { PlanAction } from '../../src/domain/types.js';
import { PlatformHttpError, RefusalError, SwitchyardError } from '../../src/errors.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { DeployPlatform, OperationRef, PlatformEvent, SwitchRequest } from '../../src/platform/port.js';
import type { Progress } from '../../src/progress.js';
import { type EnqueueResult, jobIdForPlan } from '../../src/queue.js';
import { mulberry32, seedsOr } from '../support/random.js';
import { Cleanup, jobData, timeoutGuard } from './fixtures/harness.js';
import { seedDomains } from './fixtures/seed.js';
import { type JobsEnv, setupJobs } from './fixtures/setup.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const ENVS = 3;
const ACTIONS = 25;
const SEEDS = seedsOr([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

type FaultKind = '503' | 'timeout' | 'lost' | 'refusal' | '403';
type Method = 'switch' | 'snapshot' | 'operation';

type Step =
  /** Plan now (target: the `pick`-th ready candidate that plans) and enqueue it `copies` times at once. */
  | { do: 'enqueue'; env: number; action: PlanAction; pick: number; copies: number }
  /** Plan now and keep it in `slot`, to enqueue later (stale by then if a switch or push landed). */
  | { do: 'keep'; env: number; action: PlanAction; pick: number; slot: number }
  /** A new request of a kept plan, enqueued `copies` times at once. */
  | { do: 'enqueueKept'; slot: number; copies: number }
  /** A push that builds and goes live (unless the environment is rolled back). */
  | { do: 'push'; env: number }
  /** The next call of `method` (any job's) fails so. */
  | { do: 'fault'; method: Method; kind: FaultKind }
  /** Closes worker B gracefully (handing its switch back past `shutdownTimeoutMs`) and starts it anew. */
  | { do: 'restart'; shutdownTimeoutMs: number }
  /** Waits for every job enqueued so far to end. */
  | { do: 'settle' };

function script(seed: number, n: number): Step[] {
  const rnd = mulberry32(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const steps: Step[] = [];
  let slots = 0;
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const env = int(ENVS);
    const action: PlanAction = rnd() < 0.6 ? 'rollback' : 'promote';
    const copies = rnd() < 0.35 ? 2 + int(3) : 1;
    if (r < 0.38) steps.push({ do: 'enqueue', env, action, pick: int(4), copies });
    else if (r < 0.5) steps.push({ do: 'keep', env, action, pick: int(4), slot: slots++ });
    else if (r < 0.62 && slots > 0) steps.push({ do: 'enqueueKept', slot: int(slots), copies });
    else if (r < 0.7) steps.push({ do: 'push', env });
    else if (r < 0.88) {
      const method = (['switch', 'snapshot', 'operation'] as const)[int(3)] ?? 'switch';
      const kinds: FaultKind[] =
        method === 'switch' ? ['503', 'timeout', 'lost', 'refusal', '403'] : ['503', 'timeout'];
      steps.push({ do: 'fault', method, kind: kinds[int(kinds.length)] ?? '503' });
    } else if (r < 0.95) steps.push({ do: 'restart', shutdownTimeoutMs: rnd() < 0.5 ? 1 : 25_000 });
    else steps.push({ do: 'settle' });
  }
  return steps;
}

function faultError(kind: FaultKind, method: Method): Error {
  const url = `http://platform.test/${method}`;
  switch (kind) {
    case '503':
    case 'lost':
      return new PlatformHttpError(503, 'POST', url, undefined, 'Service Unavailable');
    case 'timeout':
      return new SwitchyardError('platform_timeout', `the platform did not answer in time (${method})`, {
        retry: true,
      });
    case 'refusal':
      return new RefusalError({ code: 'forbidden', message: 'The platform refused the switch.' });
    case '403':
      return new PlatformHttpError(403, 'POST', url, 'forbidden', 'Forbidden');
  }
}

/** A rollback/promote call as the platform saw it, until its operation (if any) ended there. */
interface SwitchCall {
  readonly key: string;
  readonly environment: string;
  ref?: OperationRef;
  /** The call failed before reaching the platform, or its operation ended there. */
  closed: boolean;
  succeeded: boolean;
  /** The job it moved traffic for (set when it did). */
  job?: string;
}

/** The identity of a plan as a rollback/promote request carries it. */
function requestKey(action: PlanAction, r: SwitchRequest): string {
  return `${action}|${r.environment}|${r.targetId}|${r.expectedCurrent}|${String(r.expectedRolledBack)}`;
}

/**
 * The real LocalPlatform behind injected faults and a record of every switch: a call is in flight from
 * the moment it is made (it takes the platform a moment, `latency`) until the platform's operation
 * ended; a call made while another of the same environment is in flight is an overlap.
 */
class Instrumented {
  readonly calls: SwitchCall[] = [];
  readonly overlaps: string[] = [];
  readonly faults: Record<Method, FaultKind[]> = { switch: [], snapshot: [], operation: [] };
  private follows: Promise<void>[] = [];
  private n = 0;

  constructor(private readonly inner: LocalPlatform) {}

  platform(): DeployPlatform {
    const inner = this.inner;
    const failing = <T>(method: Method, call: () => Promise<T>): Promise<T> => {
      const kind = this.faults[method].shift();
      return kind === undefined ? call() : Promise.reject(faultError(kind, method));
    };
    return Object.assign(Object.create(inner) as DeployPlatform, {
      snapshot: (e: string) => failing('snapshot', () => inner.snapshot(e)),
      operation: (ref: OperationRef) => failing('operation', () => inner.operation(ref)),
      rollback: (r: SwitchRequest) => this.switch('rollback', r),
      promote: (r: SwitchRequest) => this.switch('promote', r),
      close: () => Promise.resolve(),
    });
  }

  private async switch(action: PlanAction, r: SwitchRequest): Promise<OperationRef> {
    const busy = this.calls.filter((c) => c.environment === r.environment && !c.closed);
    if (busy.length > 0)
      this.overlaps.push(
        `${action} ${requestKey(action, r)} while ${busy.map((c) => c.key).join(', ')} in flight`,
      );
    const call: SwitchCall = {
      key: requestKey(action, r),
      environment: r.environment,
      closed: false,
      succeeded: false,
    };
    this.calls.push(call);
    const kind = this.faults.switch.shift();
    // The platform takes a moment to answer: another switch of the environment would overlap it.
    await new Promise((resolve) => setTimeout(resolve, 1 + (this.n++ % 3)));
    if (kind !== undefined && kind !== 'lost') {
      call.closed = true;
      throw faultError(kind, 'switch');
    }
    let ref: OperationRef;
    try {
      ref = await (action === 'rollback' ? this.inner.rollback(r) : this.inner.promote(r));
    } catch (e) {
      call.closed = true;
      throw e;
    }
    call.ref = ref;
    const follow = this.follow(call, ref);
    this.follows.push(follow);
    // The switch was asked for, but its answer is lost on the way back.
    if (kind === 'lost') throw faultError(kind, 'switch');
    return ref;
  }

  /** Reads the operation straight from the platform every turn of the event loop until it ended. */
  private async follow(call: SwitchCall, ref: OperationRef): Promise<void> {
    for (;;) {
      const op = await this.inner.operation(ref);
      if (op.state === 'succeeded' || op.state === 'failed') {
        call.succeeded = op.state === 'succeeded';
        call.closed = true;
        return;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  ended(): Promise<unknown> {
    return Promise.all(this.follows);
  }
}

/** A request: what one click made, enqueued `copies` times at once. */
interface Request {
  readonly requestId: string;
  readonly plan: Plan;
  readonly results: EnqueueResult[];
}

/** The `pick`-th deployment (ready, rotating) that plans for `action` on the platform as it is now. */
async function planNow(local: LocalPlatform, env: number, action: PlanAction, pick: number, now: number) {
  const snap = await local.snapshot(`env${env}`);
  const ready = snap.deployments.filter((d) => d.status === 'ready');
  for (let i = 0; i < ready.length; i++) {
    const target = ready[(pick + i) % ready.length];
    if (target === undefined) continue;
    const res = buildPlan(snap, { action, now, target: target.id });
    if (res.ok) return res.value;
  }
  return undefined;
}

/** A traffic move: by the job whose switch made it, or a deploy. */
interface Move {
  readonly by: string;
  readonly to: string;
  readonly from: string | undefined;
}

interface Run {
  readonly env: JobsEnv;
  readonly inst: Instrumented;
  readonly requests: Request[];
  /** Traffic moves per environment, in order: the job that switched it, or a deploy. */
  readonly moves: Map<string, Move[]>;
}

async function execute(steps: readonly Step[]): Promise<Run> {
  const env = await setupJobs(cleanup, { envs: ENVS });
  const inst = new Instrumented(env.local);
  const platform = inst.platform();
  const moves = new Map<string, Move[]>();
  const jobOfKey = new Map<string, string>();
  const stop = env.local.subscribe((e: PlatformEvent) => {
    if (e.type !== 'traffic.moved') return;
    const list = moves.get(e.environment) ?? [];
    moves.set(e.environment, list);
    if (e.via === 'deploy') {
      list.push({ by: 'deploy', to: e.to, from: e.from });
      return;
    }
    // Emitted in the same step as the switch: by the call in flight for it.
    const call = inst.calls.find(
      (c) =>
        c.environment === e.environment && !c.closed && c.ref?.action === e.via && c.ref.targetId === e.to,
    );
    // The job whose plan the request carries; a request that does not carry it (or not truly) is
    // the job's whose plan has its action and target, made on the state it moved from if any.
    const byKey = call && jobOfKey.get(call.key);
    const like = [...jobOfKey].filter(([k]) => k.startsWith(`${e.via}|${e.environment}|${e.to}|`));
    const by =
      byKey ??
      (like.find(([k]) => k.startsWith(`${e.via}|${e.environment}|${e.to}|${e.from}|`)) ?? like[0])?.[1] ??
      `unknown call ${call?.key ?? ''}`;
    if (call) call.job = by;
    list.push({ by, to: e.to, from: e.from });
  });
  cleanup.add(async () => stop());
  // Verification gives up after 1.5 s (not 5 s): a job whose switch another one undid while it waited
  // to retry verifies until then (it cannot tell another switch from a platform lagging behind its own), and a run must stay short.
  const start = (extra: { shutdownTimeoutMs?: number } = {}) =>
    env.startWorker({ platform, verify: { timeoutMs: 1_500, intervalMs: 5 }, ...extra });
  await start();
  let workerB: SwitchWorker = await start();
  const requests: Request[] = [];
  const kept: Plan[] = [];
  let seq = 0;
  const enqueue = async (plan: Plan, copies: number) => {
    const requestId = `req-${++seq}.1`;
    jobOfKey.set(
      `${plan.action}|${plan.environment}|${plan.target.id}|${plan.expectedCurrent}|${String(plan.expectedRolledBack)}`,
      jobIdForPlan(plan.id),
    );
    const data = { ...jobData(plan, env.clock.now()), requestId };
    const results = await Promise.all(Array.from({ length: copies }, () => env.queue.enqueue(data)));
    requests.push({ requestId, plan, results });
  };
  const settle = async () => {
    for (const id of new Set(requests.map((r) => jobIdForPlan(r.plan.id))))
      await env.queue.waitForEnd(id, 15_000);
  };
  for (const step of steps) {
    switch (step.do) {
      case 'enqueue': {
        const plan = await planNow(env.local, step.env, step.action, step.pick, env.clock.now());
        if (plan) await enqueue(plan, step.copies);
        break;
      }
      case 'keep': {
        const plan = await planNow(env.local, step.env, step.action, step.pick, env.clock.now());
        if (plan) kept[step.slot] = plan;
        break;
      }
      case 'enqueueKept': {
        const plan = kept[step.slot];
        if (plan) await enqueue(plan, step.copies);
        break;
      }
      case 'push': {
        const d = await env.local.push({ environment: `env${step.env}` });
        await env.clock.advance(3_000);
        for (;;) {
          const got = await env.local.getDeployment(d.id);
          if (got?.status !== 'building') break;
          await new Promise((resolve) => setImmediate(resolve));
        }
        break;
      }
      case 'fault':
        inst.faults[step.method].push(step.kind);
        break;
      case 'restart':
        await workerB.close();
        workerB = await start({ shutdownTimeoutMs: step.shutdownTimeoutMs });
        break;
      case 'settle':
        await settle();
        break;
    }
  }
  await settle();
  await inst.ended();
  return { env, inst, requests, moves };
}

/** Everything the guarantees say of a finished run that does not hold. */
async function violations(run: Run): Promise<string[]> {
  const { env, inst, requests, moves } = run;
  const out: string[] = [];
  out.push(...inst.overlaps.map((o) => `overlap: ${o}`));
  const created = new Map<string, number>();
  for (const r of requests) {
    const id = jobIdForPlan(r.plan.id);
    const ids = new Set(r.results.map((x) => x.jobId));
    if (ids.size !== 1 || !ids.has(id))
      out.push(`${r.requestId}: enqueues answered jobs ${[...ids].join(', ')}`);
    const made = r.results.filter((x) => !x.joined).length;
    if (made > 1) out.push(`${r.requestId}: ${made} of its ${r.results.length} enqueues made a job`);
    created.set(id, (created.get(id) ?? 0) + made);
  }
  const audit = new Map<string, AuditEntry[]>();
  for (let i = 0; i < ENVS; i++) {
    for (const e of (await env.audit.recent(`env${i}`, 1000)).reverse()) {
      if (e.jobId === undefined) continue;
      audit.set(e.jobId, [...(audit.get(e.jobId) ?? []), e]);
    }
  }
  const finals = new Map<string, Progress>();
  for (const [id, made] of created) {
    const entries = audit.get(id) ?? [];
    const events = entries.map((e) => (e.event === 'refused' ? `refused/${e.code}` : e.event));
    // One `requested` per run made, and each run's started entries then exactly one end; nothing after
    // an end but a new run. The queue appends `requested` once BullMQ's add has answered, so a worker
    // that takes the job at once may write `started` (or even the end) ahead of it: where `requested`
    // falls is not checked (history and notices do not read the queue's own `requested`).
    const requestedRuns = events.filter((e) => e === 'requested').length;
    const runs = events
      .filter((e) => e !== 'requested')
      .join(' ')
      .split(/(?<=\b(?:succeeded|failed|refused\/\S+))\s/)
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const shape = /^(started )+(succeeded|failed|refused\/\S+)$/;
    if (requestedRuns !== made || runs.length !== made || runs.some((s) => !shape.test(s)))
      out.push(`${id}: ${made} runs made, audited as [${events.join(' ')}]`);
    const final = await env.queue.progress(id);
    const job = await env.queue.queue.getJob(id);
    const state = await job?.getState();
    if (final?.outcome === undefined || final.outcome === 'cancelled') {
      out.push(`${id}: no final state (${state}, outcome ${final?.outcome})`);
      continue;
    }
    finals.set(id, final);
    if (
      (state === 'completed') !== (final.outcome === 'succeeded') ||
      (state !== 'completed' && state !== 'failed')
    )
      out.push(`${id}: BullMQ ${state} but outcome ${final.outcome}`);
    const lastEnd = events.filter((e) => e !== 'requested' && e !== 'started').at(-1);
    const expected =
      final.outcome === 'stale'
        ? 'refused/plan_stale'
        : final.outcome === 'refused'
          ? /^refused\//
          : final.outcome;
    if (
      typeof expected === 'string'
        ? lastEnd !== expected
        : !expected.test(lastEnd ?? '') || lastEnd === 'refused/plan_stale'
    )
      out.push(`${id}: outcome ${final.outcome} (${final.code}) but its last audited end is ${lastEnd}`);
    // A run that succeeded switched (once); a stale or refused one switched nothing; a failed one may have.
    const succeededRuns = events.filter((e) => e === 'succeeded').length;
    const failedRuns = events.filter((e) => e === 'failed').length;
    const switched = inst.calls.filter(
      (c) => c.succeeded && (c.job ?? jobIdForPlan(planIdOfKey(requests, c.key))) === id,
    ).length;
    if (switched < succeededRuns || switched > succeededRuns + failedRuns)
      out.push(`${id}: ${switched} switches on the platform for runs [${events.join(' ')}]`);
    if (final.outcome === 'succeeded') {
      const off = final.traffic.filter((t) => !t.ok || t.deploymentId !== final.targetId);
      if (off.length > 0)
        out.push(`${id}: succeeded with traffic ${JSON.stringify(off)} not on ${final.targetId}`);
    }
  }
  for (let i = 0; i < ENVS; i++) {
    const slug = `env${i}`;
    // Every switch was re-validated: it moved the environment from what its plan showed.
    for (const m of moves.get(slug) ?? []) {
      if (m.by === 'deploy') continue;
      const plan = requests.find((r) => jobIdForPlan(r.plan.id) === m.by)?.plan;
      if (plan === undefined) out.push(`${slug}: moved to ${m.to} by ${m.by}`);
      else if (plan.expectedCurrent !== m.from)
        out.push(
          `${slug}: ${m.by} moved it to ${m.to} from ${m.from}, its plan was made on ${plan.expectedCurrent}`,
        );
    }
    // The last traffic move of an environment: a succeeded job's traffic list is the real routing.
    const last = moves.get(slug)?.at(-1);
    const routing = new Map((await env.local.routing(slug)).map((r) => [r.hostname, r.deploymentId]));
    const current = (await env.local.snapshot(slug)).environment.currentDeploymentId;
    for (const host of seedDomains(i))
      if (routing.get(host) !== current)
        out.push(`${slug}: ${host} routes to ${routing.get(host)}, not ${current}`);
    if (last === undefined || last.by === 'deploy') continue;
    const final = finals.get(last.by);
    if (final === undefined) {
      out.push(`${slug}: last moved by ${last.by}, not a job of the script`);
      continue;
    }
    if (final.outcome === 'stale' || final.outcome === 'refused')
      if (!(audit.get(last.by) ?? []).some((e) => e.event === 'succeeded' || e.event === 'failed'))
        out.push(`${slug}: last moved by ${last.by}, which never ran but ${final.outcome}`);
    if (final.outcome !== 'succeeded') continue;
    if (last.to !== final.targetId)
      out.push(`${slug}: last moved to ${last.to} by ${last.by}, which targets ${final.targetId}`);
    for (const t of final.traffic)
      if (routing.get(t.hostname) !== t.deploymentId)
        out.push(
          `${slug}: ${last.by} says ${t.hostname} → ${t.deploymentId}, routed to ${routing.get(t.hostname)}`,
        );
  }
  return out;
}

function planIdOfKey(requests: readonly Request[], key: string): string {
  const r = requests.find(
    ({ plan: p }) =>
      `${p.action}|${p.environment}|${p.target.id}|${p.expectedCurrent}|${String(p.expectedRolledBack)}` ===
      key,
  );
  return r?.plan.id ?? `unknown:${key}`;
}

describe('random scripts of switches, pushes, faults and restarts', () => {
  it.each(SEEDS)('seed %i: every guarantee holds once all jobs ended', async (seed) => {
    const steps = script(seed, ACTIONS);
    const replay = `seed ${seed}, script:\n${steps.map((s) => JSON.stringify(s)).join('\n')}`;
    const run = await Promise.race([execute(steps), timeoutGuard(18_000, undefined)]);
    if (run === undefined) throw new Error(`jobs did not all end within 18 s; ${replay}`);
    const found = await violations(run);
    expect(
      found,
      `${replay}\nrequests: ${run.requests.map((r) => `${r.requestId} ${r.plan.action} ${r.plan.environment} → ${r.plan.target.id} ×${r.results.length}`).join('; ')}`,
    ).toEqual([]);
  });
});
