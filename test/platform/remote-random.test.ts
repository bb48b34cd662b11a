/**
 * A seeded random test of switch jobs on the remote platforms: for Unkey and for Vercel, the real
 * adapter against its fake, a real queue and worker on the real Redis, and scripts mixing rollbacks and
 * promotes planned through the real domain (some enqueued twice), pushes, faults injected on the fake's
 * next calls (429 with Retry-After, 5xx, a refusal) or on the wire (an answer lost after the fake acted
 * on the request), dashboard switches between jobs, clock advances of the fake, and the adapter's clock
 * moved past its operation timeout while a job follows a switch. What the guarantees say holds for any
 * interleaving: every job ends in one final state; the vendor never runs two switches of the
 * environment at once; a succeeded job's traffic list is the fake's state and its target; a stale or
 * refused job switched nothing; only a failed job saying it "may still complete" is followed by a
 * vendor switch of its own; a request whose answer was lost is not sent again in the same attempt.
 * A failure prints the seed and the script; `RANDOM_SEED=<n>` replays one seed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Clock, ManualClock, systemClock } from '../../src/clock.js';
import { buildPlan, type Plan } from '../../src/domain/plan.js';
import type { PlanAction } from '../../src/domain/types.js';
import type { DeployPlatform } from '../../src/platform/port.js';
import { UnkeyPlatform } from '../../src/platform/unkey/adapter.js';
import { VercelPlatform } from '../../src/platform/vercel/adapter.js';
import type { MessageRef, Progress, Reporter } from '../../src/progress.js';
import { jobIdForPlan, type SwitchQueue } from '../../src/queue.js';
import { VercelFakeServer } from '../fakes/vercel-server.js';
import { Cleanup, jobData, RecordingReporter, timeoutGuard } from '../jobs/fixtures/harness.js';
import { mulberry32 } from '../support/random.js';
import { uniqueName } from '../support/redis.js';
import { openTestQueue, QUICK_RETRIES, startTestWorker } from '../support/switch-worker.js';
import { startAcmeUnkey } from '../support/unkey.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const STEPS = 22;
const REPLAY = process.env.RANDOM_SEED;
const SEEDS = REPLAY === undefined ? [1, 2, 3, 4, 5, 6] : [Number(REPLAY)];
const UNKEY_DELAY = 1_000;

type FaultKind = '429' | '5xx' | 'lost' | 'refusal';
type FaultOn = PlanAction | 'read';

type Step =
  /** Plan now (target: the `pick`-th ready deployment that plans) and enqueue it; `twice`: again at once. */
  | { do: 'enqueue'; action: PlanAction; pick: number; twice: boolean }
  /** Enqueue the last plan made again, as a new request (joins its job, or replaces an ended one). */
  | { do: 'again' }
  /** A deployment that goes live (unless the environment is rolled back). */
  | { do: 'push' }
  /** The next matching call to the fake fails so. */
  | { do: 'fault'; kind: FaultKind; on: FaultOn; pick: number }
  /** Waits for every job, then switches on the fake as its dashboard would. */
  | { do: 'dashboard'; action: PlanAction; pick: number }
  /** The fake's clock moves on (Unkey: its switches take effect; 31 min: replaced ones stop). */
  | { do: 'advance'; ms: number }
  /** The adapter's clock jumps past its operation timeout (a switch it follows ends "may still complete"). */
  | { do: 'expire' }
  /** Waits for every job enqueued so far to end. */
  | { do: 'settle' };

function script(seed: number): Step[] {
  const rnd = mulberry32(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const action = (): PlanAction => (rnd() < 0.6 ? 'rollback' : 'promote');
  const steps: Step[] = [];
  for (let i = 0; i < STEPS; i++) {
    const r = rnd();
    if (r < 0.3) steps.push({ do: 'enqueue', action: action(), pick: int(4), twice: rnd() < 0.25 });
    else if (r < 0.36) steps.push({ do: 'again' });
    else if (r < 0.44) steps.push({ do: 'push' });
    else if (r < 0.66) {
      const on: FaultOn = (['rollback', 'promote', 'read'] as const)[int(3)] ?? 'read';
      const kinds: FaultKind[] = on === 'read' ? ['429', '5xx'] : ['429', '5xx', 'lost', 'refusal'];
      steps.push({ do: 'fault', kind: kinds[int(kinds.length)] ?? '429', on, pick: int(4) });
    } else if (r < 0.74) steps.push({ do: 'dashboard', action: action(), pick: int(4) });
    else if (r < 0.86) steps.push({ do: 'advance', ms: rnd() < 0.15 ? 31 * 60_000 : 500 + int(3) * 500 });
    else if (r < 0.92) steps.push({ do: 'expire' });
    else steps.push({ do: 'settle' });
  }
  return steps;
}

/** A rollback/promote request as it went over the wire. */
interface Post {
  readonly seq: number;
  readonly action: PlanAction;
  readonly target: string;
  /** The fake's answer (also when the test lost it on the way back); undefined until it answered. */
  status: number | undefined;
  readonly lost: boolean;
  /** The vendor's switch still running when this one was accepted. */
  overlapping: Post | undefined;
  /** The fake's clock when it was accepted. */
  readonly at: number;
  /** Job and attempt it was sent for (read from the reports: one job runs at a time). */
  job?: string;
  attempt?: number;
}

/** Whether the vendor accepted `p` (or has not answered yet: it may be acting on it). */
function accepted(p: Post): boolean {
  return p.status === undefined || p.status < 300;
}

/** A change of what the environment serves on the fake, and what made it. */
interface Move {
  readonly seq: number;
  readonly to: string | undefined;
  readonly rolledBack: boolean;
  readonly by: 'push' | 'dashboard' | 'vendor';
  /** For `vendor`: the accepted request it carried out. */
  readonly post?: Post;
}

/** One run of a job, from its first report to its first final one. */
interface JobRun {
  readonly jobId: string;
  readonly startSeq: number;
  endSeq?: number;
  final?: Progress;
  /** The fake's routing when the final state was reported (hostname → deployment). */
  routes?: Map<string, string | undefined>;
  /** Whether the fake moved while this run was under way (its routing then may not be the final one). */
  movedMeanwhile?: boolean;
  attempt: number;
}

/** The vendor side of a run: the fake, its clocks, and the real adapter the worker uses. */
interface Remote {
  readonly platform: DeployPlatform;
  readonly opTimeoutMs: number;
  requests(): number;
  waitForRequests(n: number): Promise<void>;
  state(): { current: string | undefined; rolledBack: boolean };
  routes(): Map<string, string | undefined>;
  /** Deployment ids, oldest first. */
  deployments(): string[];
  push(): void;
  /** A switch outside Switchyard, applied at once; false when the fake refuses it. */
  dashboard(action: PlanAction, target: string): Promise<boolean>;
  /** Lets the vendor's switch in flight go on (Unkey: its delay passes; Vercel: its alias job ends). */
  nudge(): Promise<void>;
  advance(ms: number): Promise<void>;
  expire(): void;
  fault(kind: Exclude<FaultKind, 'lost'>, on: FaultOn, pick: number): void;
  /** The accepted request a vendor move to `to` carried out. */
  postOf(to: string | undefined, rolledBack: boolean, posts: readonly Post[]): Post | undefined;
  /** Whether a switch the vendor accepted is still running (before `at` on the fake's clock). */
  busy(posts: readonly Post[]): Post | undefined;
  fakeNow(): number;
}

/** The adapter's clock: real time plus an offset the script moves past the operation timeout. */
function offsetClock(): Clock & { offset: number } {
  const clock = { offset: 0, now: () => Date.now() + clock.offset, sleep: systemClock.sleep };
  return clock;
}

/**
 * The HTTP client's clock: a backoff or Retry-After wait (anything shorter than the request timeout)
 * passes at once; the request timeout itself runs in real time (no request of these scripts hangs).
 */
function skippingClock(timeoutMs: number): Clock {
  return {
    now: () => Date.now(),
    sleep: (ms, signal) =>
      ms >= timeoutMs ? systemClock.sleep(ms, signal) : new Promise<void>((resolve) => setImmediate(resolve)),
  };
}

/** Wire recorder and lost answers: what `fetch` the adapter's client gets. */
class Wire {
  readonly posts: Post[] = [];
  private readonly lose: PlanAction[] = [];
  constructor(
    private readonly classify: (
      url: string,
      init?: RequestInit,
    ) => { action: PlanAction; target: string } | undefined,
    private readonly ctx: {
      seq: () => number;
      remote: () => Remote;
      attribution: () => Pick<Post, 'job' | 'attempt'>;
    },
  ) {}

  loseNext(action: PlanAction): void {
    this.lose.push(action);
  }

  fetch: typeof fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const sw = this.classify(url, init);
    if (sw === undefined) return fetch(input, init);
    const remote = this.ctx.remote();
    const busy = remote.busy(this.posts);
    const who = this.ctx.attribution();
    const i = this.lose.indexOf(sw.action);
    const lost = i >= 0;
    if (lost) this.lose.splice(i, 1);
    // Recorded before the answer: the vendor may act on it (and the test see that) before it arrives.
    const post: Post = {
      seq: this.ctx.seq(),
      ...sw,
      status: undefined,
      lost,
      overlapping: undefined,
      at: remote.fakeNow(),
      ...who,
    };
    this.posts.push(post);
    const res = await fetch(input, init);
    post.status = res.status;
    if (busy !== undefined && res.status < 300) post.overlapping = busy;
    // The fake acted on it; its answer never reaches the client (a connection cut on the way back).
    if (lost) throw new TypeError('fetch failed: socket hang up');
    return res;
  };
}

interface Harness {
  readonly remote: Remote;
  readonly wire: Wire;
  readonly queue: SwitchQueue;
  readonly reporter: Reporter;
}

type Ctx = ConstructorParameters<typeof Wire>[1];

async function unkeyHarness(rnd: () => number, ctx: Ctx, reporter: Reporter): Promise<Harness> {
  const KEY = 'unkey_3ZrandomTestRootKey0123456789';
  const env = { project: 'acme', app: 'api', environment: 'production' } as const;
  const fakeClock = new ManualClock();
  const server = await startAcmeUnkey(KEY, { clock: fakeClock, switchDelayMs: UNKEY_DELAY });
  cleanup.add(() => server.close());
  const ids: string[] = [];
  ids.push(server.push({ ...env, branch: 'main' }));
  await fakeClock.advance(60_000);
  ids.push(server.push({ ...env, branch: 'main' }));
  await fakeClock.advance(60_000);
  ids.push(server.push({ ...env, branch: 'main' }));
  const adapterClock = offsetClock();
  const wire = new Wire((url, init) => {
    const m = /\/v2\/deployments\.(rollback|promote)Deployment$/.exec(url);
    if (!m) return undefined;
    const body = JSON.parse(String(init?.body ?? '{}')) as { deploymentId?: string };
    return { action: m[1] === 'rollback' ? 'rollback' : 'promote', target: body.deploymentId ?? '' };
  }, ctx);
  const platform = new UnkeyPlatform({
    environments: { production: env },
    client: {
      baseUrl: server.url,
      rootKey: KEY,
      timeoutMs: 5_000,
      fetch: wire.fetch,
      clock: skippingClock(5_000),
    },
    clock: adapterClock,
  });
  cleanup.add(() => platform.close());
  const state = () => ({
    current: server.currentOf('acme', 'api'),
    rolledBack: server.isRolledBack('acme', 'api'),
  });
  const remote: Remote = {
    platform,
    opTimeoutMs: 5 * 60_000,
    requests: () => server.requests.length,
    waitForRequests: (n) => server.waitForRequests(n),
    state,
    routes: () => {
      const out = new Map<string, string | undefined>();
      for (const id of ids) for (const h of server.domainsOf(id)) out.set(h, id);
      return out;
    },
    deployments: () => [...ids],
    push: () => {
      ids.push(server.push({ ...env, branch: 'main' }));
    },
    dashboard: async (action, target) => {
      try {
        server.switchNow(action, target);
        return true;
      } catch {
        return false;
      }
    },
    nudge: async () => {
      await fakeClock.advance(UNKEY_DELAY);
      server.tick();
    },
    advance: async (ms) => {
      await fakeClock.advance(ms);
      server.tick();
    },
    expire: () => {
      adapterClock.offset += 5 * 60_000 + 1_000;
    },
    fault: (kind, on, pick) => {
      const endpoint =
        on === 'rollback'
          ? 'deployments.rollbackDeployment'
          : on === 'promote'
            ? 'deployments.promoteDeployment'
            : pick % 2 === 0
              ? 'deployments.listDeployments'
              : 'deployments.getDeployment';
      if (kind === '429')
        server.fault({ kind: 'status', status: 429, retryAfter: String(pick % 3), endpoint });
      else if (kind === '5xx') server.fault({ kind: 'status', status: 500 + (pick % 2) * 3, endpoint });
      else server.fault({ kind: 'status', status: 412, code: 'application/precondition_failed', endpoint });
    },
    postOf: (to, rolledBack, posts) =>
      posts.filter((p) => accepted(p) && p.target === to && (p.action === 'rollback') === rolledBack).at(-1),
    busy: (posts) =>
      posts.find((p) => p.status !== undefined && p.status < 300 && p.at + UNKEY_DELAY > fakeClock.now()),
    fakeNow: () => fakeClock.now(),
  };
  void rnd;
  const queueName = uniqueName('unkey-random');
  const queue = await openTestQueue(cleanup, {
    queueName,
    retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
  });
  await startTestWorker(cleanup, { queueName, platform, reporter, ...QUICK_RETRIES });
  return { remote, wire, queue, reporter };
}

async function vercelHarness(rnd: () => number, ctx: Ctx, reporter: Reporter): Promise<Harness> {
  const TOKEN = 'vcp_randomTestToken0123456789abcd';
  const TEAM = 'team_acme123';
  // One clock for the fake and the adapter (alias jobs' `requestedAt` is compared with the adapter's).
  const clock = offsetClock();
  const server = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: [TEAM] } });
  cleanup.add(() => server.close());
  const projectId = server.addProject({
    name: 'acme-web',
    teamId: TEAM,
    domains: [{ name: 'shop.acme.com' }],
  });
  const ids = [
    server.deploy({ project: projectId }),
    server.deploy({ project: projectId }),
    server.deploy({ project: projectId }),
  ];
  const wire = new Wire((url, init) => {
    if ((init?.method ?? 'GET') !== 'POST') return undefined;
    const m = /\/projects\/[^/]+\/(rollback|promote)\/([^/?]+)/.exec(url);
    if (!m) return undefined;
    return { action: m[1] === 'rollback' ? 'rollback' : 'promote', target: decodeURIComponent(m[2] ?? '') };
  }, ctx);
  const platform = new VercelPlatform({
    project: 'acme-web',
    client: {
      baseUrl: server.url,
      token: TOKEN,
      teamId: TEAM,
      timeoutMs: 5_000,
      fetch: wire.fetch,
      clock: skippingClock(5_000),
    },
    clock,
  });
  cleanup.add(() => platform.close());
  // The i-th alias job Vercel runs: mostly succeeds, sometimes fails (decided by the seed).
  const jobOutcomes: ('succeeded' | 'failed')[] = Array.from({ length: 64 }, () =>
    rnd() < 0.85 ? 'succeeded' : 'failed',
  );
  let jobsEnded = 0;
  const running = () => {
    const s = server.jobOf(projectId)?.jobStatus;
    return s === 'pending' || s === 'in-progress';
  };
  const finish = () => {
    if (running()) server.finishAliasJob(projectId, jobOutcomes[jobsEnded++ % jobOutcomes.length]);
  };
  const remote: Remote = {
    platform,
    opTimeoutMs: 3 * 60_000,
    requests: () => server.requests.length,
    waitForRequests: (n) => server.waitForRequest(() => server.requests.length >= n),
    state: () => ({ current: server.productionOf(projectId), rolledBack: server.isRolledBack(projectId) }),
    routes: () => {
      const prod = server.productionOf(projectId);
      return new Map([
        ['acme-web.vercel.app', prod],
        ['shop.acme.com', prod],
      ]);
    },
    deployments: () => [...ids],
    push: () => {
      ids.push(server.deploy({ project: projectId }));
    },
    dashboard: async (action, target) => {
      finish();
      const path =
        action === 'rollback'
          ? `/v1/projects/${projectId}/rollback/${target}`
          : `/v10/projects/${projectId}/promote/${target}`;
      const res = await fetch(`${server.url}${path}?teamId=${TEAM}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: '{}',
      });
      if (res.status >= 300) return false;
      server.finishAliasJob(projectId, 'succeeded');
      return true;
    },
    nudge: async () => finish(),
    advance: async (ms) => {
      clock.offset += ms;
    },
    expire: () => {
      clock.offset += 3 * 60_000 + 1_000;
    },
    fault: (kind, on, pick) => {
      const path =
        on === 'rollback'
          ? '/v1/projects/'
          : on === 'promote'
            ? '/v10/projects/'
            : (['/v9/projects/', '/v13/deployments/', '/v6/deployments', '/v4/aliases/'][pick] ??
              '/v9/projects/');
      const method = on === 'read' ? 'GET' : 'POST';
      if (kind === '429')
        server.fault({ kind: 'status', status: 429, retryAfter: String(pick % 3), method, path });
      else if (kind === '5xx') server.fault({ kind: 'status', status: 500 + (pick % 2) * 2, method, path });
      else
        server.fault({
          kind: 'status',
          status: 400,
          code: 'plan_limit',
          message: 'Hobby plans roll back to the previous deployment only.',
          method,
          path,
        });
    },
    postOf: (to, rolledBack, posts) =>
      posts.filter((p) => accepted(p) && p.target === to && (p.action === 'rollback') === rolledBack).at(-1),
    // Vercel runs one alias job per project at a time: the last accepted request, while its job runs.
    busy: (posts) =>
      running() ? posts.filter((p) => p.status !== undefined && p.status < 300).at(-1) : undefined,
    fakeNow: () => clock.now(),
  };
  const queueName = uniqueName('vercel-random');
  const queue = await openTestQueue(cleanup, {
    queueName,
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 },
  });
  await startTestWorker(cleanup, { queueName, platform, reporter, ...QUICK_RETRIES });
  return { remote, wire, queue, reporter };
}

interface Outcome {
  readonly plans: Map<string, Plan>;
  readonly runs: JobRun[];
  readonly moves: Move[];
  readonly posts: readonly Post[];
  readonly ended: Map<string, Progress | undefined>;
}

async function execute(vendor: 'unkey' | 'vercel', seed: number, steps: readonly Step[]): Promise<Outcome> {
  let seq = 0;
  const next = () => ++seq;
  const plans = new Map<string, Plan>();
  const runs: JobRun[] = [];
  const moves: Move[] = [];
  let lastReported: { jobId: string; attempt: number } | undefined;
  let remoteRef: Remote | undefined;
  const remote = () => {
    if (remoteRef === undefined) throw new Error('no remote yet');
    return remoteRef;
  };
  const recording = new RecordingReporter();
  const reporter: Reporter = {
    report: (p: Progress, messages: readonly MessageRef[]) => {
      const s = next();
      let run = runs.filter((r) => r.jobId === p.jobId).at(-1);
      if (run === undefined || run.final !== undefined) {
        if (p.outcome === undefined || run === undefined) {
          run = { jobId: p.jobId, startSeq: s, attempt: p.attempt };
          runs.push(run);
        }
      }
      if (run.final === undefined) {
        run.attempt = Math.max(run.attempt, p.attempt);
        if (p.outcome === undefined) lastReported = { jobId: p.jobId, attempt: p.attempt };
        else {
          run.final = p;
          run.endSeq = s;
          run.routes = remote().routes();
          run.movedMeanwhile = moves.some((m) => m.seq > run.startSeq);
        }
      }
      return recording.report(p, messages);
    },
  };
  const ctx: Ctx = {
    seq: next,
    remote,
    attribution: () => {
      const open = runs.filter((r) => r.final === undefined);
      const who =
        open.find((r) => r.jobId === lastReported?.jobId) ?? (open.length === 1 ? open[0] : undefined);
      return who === undefined ? {} : { job: who.jobId, attempt: who.attempt };
    },
  };
  const rnd = mulberry32(seed * 7919 + 1);
  const h =
    vendor === 'unkey' ? await unkeyHarness(rnd, ctx, reporter) : await vercelHarness(rnd, ctx, reporter);
  remoteRef = h.remote;
  const r = h.remote;

  /** Runs `act` and records the move it made on the fake (by `by`, or the vendor's own switch). */
  const moving = async (by: Move['by'], act: () => Promise<unknown> | unknown) => {
    const before = r.state();
    const at = seq; // a move during `act` may be seen by a job ending meanwhile: it counts as before
    await act();
    const after = r.state();
    if (after.current === before.current && after.rolledBack === before.rolledBack) return;
    const post = by === 'vendor' ? r.postOf(after.current, after.rolledBack, h.wire.posts) : undefined;
    moves.push({ seq: at, to: after.current, rolledBack: after.rolledBack, by, ...(post ? { post } : {}) });
  };

  let lastPlan: Plan | undefined;
  let requestNo = 0;
  const enqueue = async (plan: Plan) => {
    plans.set(jobIdForPlan(plan.id), plan);
    await h.queue.enqueue({ ...jobData(plan, Date.now()), requestId: `req-${++requestNo}.1` });
  };
  const ended = new Map<string, Progress | undefined>();
  const settle = async () => {
    for (const id of plans.keys()) {
      for (;;) {
        const seen = r.requests();
        const end = await Promise.race([
          h.queue.waitForEnd(id, 20_000).then((p) => ({ p })),
          r.waitForRequests(seen + 6).then(() => undefined),
        ]);
        if (end !== undefined) {
          ended.set(id, end.p);
          break;
        }
        await moving('vendor', () => r.nudge());
      }
    }
  };
  const planNow = async (action: PlanAction, pick: number): Promise<Plan | undefined> => {
    const snap = await r.platform.snapshot('production').catch(() => undefined);
    if (snap === undefined) return undefined;
    const ready = snap.deployments.filter((d) => d.status === 'ready');
    for (let i = 0; i < ready.length; i++) {
      const target = ready[(pick + i) % ready.length];
      if (target === undefined) continue;
      const res = buildPlan(snap, { action, now: Date.now(), target: target.id });
      if (res.ok) return res.value;
    }
    return undefined;
  };

  for (const step of steps) {
    switch (step.do) {
      case 'enqueue': {
        const plan = await planNow(step.action, step.pick);
        if (plan === undefined) break;
        lastPlan = plan;
        await enqueue(plan);
        if (step.twice) await enqueue(plan);
        break;
      }
      case 'again':
        if (lastPlan) await enqueue(lastPlan);
        break;
      case 'push':
        await moving('push', () => r.push());
        break;
      case 'fault':
        if (step.kind === 'lost') h.wire.loseNext(step.on === 'promote' ? 'promote' : 'rollback');
        else r.fault(step.kind, step.on, step.pick);
        break;
      case 'dashboard': {
        await settle();
        await moving('vendor', () => r.nudge());
        const ids = r.deployments();
        const { current } = r.state();
        const others = ids.filter((id) => id !== current);
        for (let i = 0; i < others.length; i++) {
          const target = others[(step.pick + i) % others.length];
          if (target === undefined) continue;
          let done = false;
          await moving('dashboard', async () => {
            done = await r.dashboard(step.action, target);
          });
          if (done) break;
        }
        break;
      }
      case 'advance':
        await moving('vendor', () => r.advance(step.ms));
        break;
      case 'expire':
        r.expire();
        break;
      case 'settle':
        await settle();
        break;
    }
  }
  await settle();
  // Whatever the vendor still runs finishes now: a switch landing after its job ended shows here.
  await moving('vendor', () => r.nudge());
  await moving('vendor', () => r.advance(UNKEY_DELAY));
  return { plans, runs, moves, posts: h.wire.posts, ended };
}

const MAY_STILL_COMPLETE = /may still complete/;

/** A failed job saying the vendor may still carry out its switch. */
function warned(f: Progress): boolean {
  return f.outcome === 'failed' && MAY_STILL_COMPLETE.test(f.message ?? '');
}

/** The run of a job that sent `post`. */
function runOf(o: Outcome, post: Post): JobRun | undefined {
  return o.runs.find(
    (x) => x.jobId === post.job && x.startSeq < post.seq && (x.endSeq ?? Infinity) > post.seq,
  );
}

/** Everything the guarantees say of a finished run that does not hold. */
function violations(o: Outcome): string[] {
  const out: string[] = [];
  for (const [id, final] of o.ended) {
    if (final?.outcome === undefined || final.outcome === 'cancelled')
      out.push(`${id}: no final state (${final?.outcome})`);
  }
  for (const run of o.runs) {
    const f = run.final;
    if (f === undefined) {
      out.push(`${run.jobId} (run from seq ${run.startSeq}): never reported a final state`);
      continue;
    }
    const plan = o.plans.get(run.jobId);
    const mine = o.posts.filter(
      (p) => p.job === run.jobId && p.seq > run.startSeq && p.seq < (run.endSeq ?? Infinity),
    );
    const taken = mine.filter(accepted);
    if (f.outcome === 'succeeded') {
      const off = f.traffic.filter((t) => !t.ok || t.deploymentId !== f.targetId);
      if (off.length > 0)
        out.push(`${run.jobId}: succeeded with traffic off its target ${JSON.stringify(off)}`);
      const hosts = f.traffic.map((t) => t.hostname).sort();
      const planned = (plan?.affectedDomains ?? []).map((d) => d.hostname).sort();
      if (JSON.stringify(hosts) !== JSON.stringify(planned))
        out.push(`${run.jobId}: succeeded with traffic on [${hosts}], its plan moves [${planned}]`);
      // The fake's routing when the job reported it (unless the fake moved while the job ran).
      for (const t of f.traffic) {
        const on = run.routes?.get(t.hostname);
        if (on !== t.deploymentId && run.movedMeanwhile !== true)
          out.push(`${run.jobId}: says ${t.hostname} → ${t.deploymentId}, the fake routed it to ${on}`);
      }
    }
    if ((f.outcome === 'stale' || f.outcome === 'refused') && taken.length > 0)
      out.push(
        `${run.jobId}: ${f.outcome} (${f.code}) after the vendor accepted its ${taken.map((p) => `${p.action} to ${p.target}`).join(', ')}`,
      );
    // An answer lost (or a 5xx) on a switch request: that attempt sends no second one.
    for (const p of mine) {
      if (!(p.lost || (p.status ?? 0) >= 500)) continue;
      const again = mine.find((q) => q.seq > p.seq && q.attempt === p.attempt);
      if (again)
        out.push(
          `${run.jobId}: attempt ${p.attempt} sent its ${p.action} again after ${p.lost ? 'losing its answer' : `a ${p.status}`}`,
        );
    }
  }
  // Two switches at once on the vendor: only after the first one's job ended saying it may still
  // complete (the lock is released then; docs/jobs.md lets the vendor finish it later), or when a
  // job's retry asks again for its own switch while its earlier, unanswered request still runs there:
  // nothing tells the retry that request is pending (no live history, no operation to follow), and the
  // same switch asked twice moves traffic to the same place (docs/jobs.md "Guarantees").
  for (const p of o.posts) {
    const busy = p.overlapping;
    if (busy === undefined) continue;
    if (busy.job !== undefined && busy.job === p.job && busy.action === p.action && busy.target === p.target)
      continue;
    const run = runOf(o, busy);
    if (run?.final !== undefined && (run.endSeq ?? Infinity) < p.seq && warned(run.final)) continue;
    out.push(
      `vendor ran two switches at once: ${p.action} to ${p.target} (${p.job} attempt ${p.attempt}) accepted while ${busy.action} to ${busy.target} (${busy.job} attempt ${busy.attempt}) ran`,
    );
  }
  // The vendor carried out a job's switch after that job ended: only "may still complete" warns of it.
  for (const m of o.moves) {
    if (m.by !== 'vendor' || m.post?.job === undefined) continue;
    const post = m.post;
    const run = o.runs.find(
      (x) => x.jobId === post.job && x.startSeq < post.seq && (x.endSeq ?? Infinity) > post.seq,
    );
    if (run?.final === undefined || (run.endSeq ?? Infinity) > m.seq) continue;
    const f = run.final;
    if (!warned(f))
      out.push(
        `${run.jobId}: the vendor carried out its ${post.action} to ${post.target} after the job ended ${f.outcome} (${f.code}): "${f.message}"`,
      );
  }
  return out;
}

describe.each(['unkey', 'vercel'] as const)(
  '%s: random scripts of switches, faults and dashboard moves',
  (vendor) => {
    it.each(SEEDS)('seed %i: every guarantee holds', async (seed) => {
      const steps = script(seed);
      const replay = `${vendor} seed ${seed} (RANDOM_SEED=${seed}), script:\n${steps.map((s) => JSON.stringify(s)).join('\n')}`;
      const o = await Promise.race([execute(vendor, seed, steps), timeoutGuard(15_000, undefined)]);
      if (o === undefined) throw new Error(`jobs did not all end within 15 s; ${replay}`);
      const found = violations(o);
      const log = [
        ...o.posts.map(
          (p) =>
            `post#${p.seq} ${p.action}→${p.target} ${p.status}${p.lost ? ' lost' : ''} job ${p.job} a${p.attempt}`,
        ),
        ...o.moves.map((m) => `move#${m.seq} ${m.by} → ${m.to}${m.rolledBack ? ' (rolled back)' : ''}`),
        ...o.runs.map(
          (x) => `run ${x.jobId} #${x.startSeq}-${x.endSeq} ${x.final?.outcome} ${x.final?.code ?? ''}`,
        ),
      ];
      expect(found, `${replay}\n${log.join('\n')}`).toEqual([]);
    });
  },
);
