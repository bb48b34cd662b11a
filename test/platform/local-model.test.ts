/**
 * A seeded random test of the embedded local platform against a small reference model of
 * seed-rollbacks.txt (and docs/router.md for what the router answers). Each sequence applies random
 * steps (pushes that build or fail, clock moves across the 30-minute and six-hour thresholds,
 * rollbacks and promotes to valid and invalid targets, visits to preview domains, stops, restarts from
 * the state file) to a real LocalPlatform behind a real TrafficRouter on a ManualClock, and to the
 * model; after every step the two must agree, and every few steps every domain is asked through the
 * router who answers. A failure names the seed and the steps so far: `replay(seed)` runs it again.
 *
 * The model is written from the seed text, not from platform.ts: where they disagreed, the seed text
 * decided which one was wrong.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { LocalPlatform } from '../../src/platform/local/platform.js';
import { probe, TrafficRouter } from '../../src/platform/local/router.js';
import type { LocalState } from '../../src/platform/local/state.js';
import type { OperationRef } from '../../src/platform/port.js';
import { mulberry32 } from '../support/random.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** The seed's thresholds, restated here rather than imported: the model must not borrow the code's. */
const STANDBY_AFTER = 30 * MIN;
const PREVIEW_IDLE = 6 * HOUR;
const TICK = MIN;
/** Odd durations, so that a build or a reactivation rarely ends on a maintenance tick (see nudge). */
const BUILD = 1234;
const REACT = 777;
const SEQUENCES = 20;
const STEPS = 60;
const ROUTER_CHECK_EVERY = 10;

type Status = 'building' | 'ready' | 'failed' | 'standby' | 'stopped';
type Stickiness = 'live' | 'environment' | 'branch' | 'deployment';

interface MDep {
  readonly id: string;
  readonly env: string;
  readonly branch: string;
  /** Push order (seeded deployments first, by creation time). */
  readonly order: number;
  readonly createdAt: number;
  status: Status;
  fails: boolean;
  buildDoneAt?: number | undefined;
  readyAt?: number | undefined;
  /** When it last stopped serving (production's 30 minutes count from here). */
  stoppedServingAt?: number | undefined;
  /** Its last request (preview's six idle hours count from here). */
  lastRequestAt?: number | undefined;
  /** Became ready while its environment was rolled back: it must not get domains by itself. */
  frozen: boolean;
}

interface MDom {
  readonly hostname: string;
  readonly env: string;
  readonly stickiness: Stickiness;
  readonly branch?: string | undefined;
  dep?: string | undefined;
}

interface MEnv {
  readonly slug: string;
  readonly kind: 'production' | 'preview';
  readonly productionBranch?: string | undefined;
  current?: string | undefined;
  rolledBack: boolean;
}

interface MSwitch {
  readonly action: 'rollback' | 'promote';
  readonly env: string;
  readonly targetId: string;
  readonly doneAt: number;
  readonly basisCurrent: string | undefined;
  readonly basisRolledBack: boolean;
  readonly ref: OperationRef;
}

/** The seed's rules, on plain data. */
class Model {
  deps: MDep[] = [];
  doms: MDom[] = [];
  envs = new Map<string, MEnv>();
  switches: MSwitch[] = [];
  wakes: Array<{ id: string; doneAt: number }> = [];
  nextTickAt: number;
  now: number;
  private orderSeq = 0;

  constructor(state: LocalState, now: number) {
    this.now = now;
    this.nextTickAt = now + TICK;
    const sorted = [...state.deployments].sort(
      (a, b) => (a.pushSeq ?? -1) - (b.pushSeq ?? -1) || a.createdAt - b.createdAt,
    );
    for (const d of sorted) {
      this.deps.push({
        id: d.id,
        env: d.environment,
        branch: d.branch,
        order: this.orderSeq++,
        createdAt: d.createdAt,
        status: d.status,
        fails: d.buildFails === true,
        buildDoneAt: d.buildDoneAt,
        readyAt: d.readyAt,
        stoppedServingAt: d.stoppedServingAt,
        lastRequestAt: d.lastRequestAt,
        frozen: false,
      });
    }
    for (const d of state.domains) {
      this.doms.push({
        hostname: d.hostname,
        env: d.environment,
        stickiness: d.stickiness,
        branch: d.branch,
        dep: d.deploymentId,
      });
    }
    for (const e of state.environments) {
      this.envs.set(e.slug, {
        slug: e.slug,
        kind: e.kind,
        productionBranch: e.productionBranch,
        current: e.currentDeploymentId,
        rolledBack: e.rolledBack,
      });
    }
  }

  dep(id: string): MDep | undefined {
    return this.deps.find((d) => d.id === id);
  }

  env(slug: string): MEnv {
    const e = this.envs.get(slug);
    if (e === undefined) throw new Error(`model: no environment ${slug}`);
    return e;
  }

  /** Serving: an environment's current deployment, or one any live/environment/branch domain points to. */
  serving(): Set<string> {
    const ids = new Set<string>();
    for (const e of this.envs.values()) if (e.current !== undefined) ids.add(e.current);
    for (const d of this.doms) if (d.stickiness !== 'deployment' && d.dep !== undefined) ids.add(d.dep);
    return ids;
  }

  /** Runs a change of domains/currents and dates who stopped (or started again) serving. */
  private moving(change: () => void): void {
    const before = this.serving();
    change();
    const after = this.serving();
    for (const d of this.deps) {
      if (before.has(d.id) && !after.has(d.id)) d.stoppedServingAt = this.now;
      else if (!before.has(d.id) && after.has(d.id)) d.stoppedServingAt = undefined;
    }
  }

  push(env: string, branch: string, fails: boolean, id: string, ownHost: string): void {
    this.deps.push({
      id,
      env,
      branch,
      order: this.orderSeq++,
      createdAt: this.now,
      status: 'building',
      fails,
      buildDoneAt: this.now + BUILD,
      frozen: false,
    });
    // A pushed deployment's own domain routes from the push on (503 while it builds).
    this.doms.push({ hostname: ownHost, env, stickiness: 'deployment', dep: id });
  }

  buildDone(d: MDep): void {
    if (d.status !== 'building') return;
    d.buildDoneAt = undefined;
    if (d.fails) {
      d.status = 'failed';
      return;
    }
    d.status = 'ready';
    d.readyAt = this.now;
    d.lastRequestAt = this.now;
    const env = this.env(d.env);
    if (env.rolledBack) {
      // Seed: new pushes still create deployments, but domains don't get reassigned automatically.
      d.frozen = true;
      d.stoppedServingAt = this.now;
      return;
    }
    const newer = (holder: string | undefined) =>
      holder !== undefined && holder !== d.id && (this.dep(holder)?.order ?? -1) > d.order;
    const goesLive =
      (env.productionBranch === undefined || env.productionBranch === d.branch) && !newer(env.current);
    let moved = 0;
    const previous = env.current;
    this.moving(() => {
      for (const dom of this.doms) {
        if (dom.env !== d.env) continue;
        const takes =
          ((dom.stickiness === 'live' || dom.stickiness === 'environment') && goesLive) ||
          (dom.stickiness === 'branch' && dom.branch === d.branch && !newer(dom.dep));
        if (takes) {
          dom.dep = d.id;
          moved++;
        }
      }
      if (!this.doms.some((x) => x.env === d.env && x.stickiness === 'branch' && x.branch === d.branch)) {
        this.doms.push({
          hostname: `${d.branch}.acme.localhost`,
          env: d.env,
          stickiness: 'branch',
          branch: d.branch,
          dep: d.id,
        });
        moved++;
      }
      if (goesLive) env.current = d.id;
    });
    if (goesLive && previous !== undefined && previous !== d.id) {
      const prev = this.dep(previous);
      if (prev) prev.stoppedServingAt = this.now;
    } else if (!goesLive && moved === 0) d.stoppedServingAt = this.now;
  }

  /** Seed: production deployments not serving for 30 minutes go to standby; preview ones idle for six hours. */
  tick(): void {
    const serving = this.serving();
    for (const d of this.deps) {
      if (d.status !== 'ready') continue;
      const env = this.env(d.env);
      if (env.kind === 'production') {
        if (serving.has(d.id)) continue;
        if (this.now - (d.stoppedServingAt ?? d.readyAt ?? d.createdAt) >= STANDBY_AFTER)
          d.status = 'standby';
      } else if (this.now - (d.lastRequestAt ?? d.readyAt ?? d.createdAt) >= PREVIEW_IDLE) {
        d.status = 'standby';
      }
    }
  }

  /** Why the platform must refuse this switch now (undefined: it must accept it). */
  refusal(action: 'rollback' | 'promote', envSlug: string, targetId: string): string | undefined {
    const target = this.dep(targetId);
    if (target === undefined) return 'unknown_deployment';
    if (target.env !== envSlug) return 'target_wrong_environment';
    if (target.status === 'failed' || target.status === 'building') return 'target_not_ready';
    if (target.status === 'stopped') return 'target_stopped';
    const env = this.env(envSlug);
    if (env.current === undefined) return 'no_current_deployment';
    // Promote of the current deployment is how a rolled-back environment goes back to normal.
    if (target.id === env.current && !(action === 'promote' && env.rolledBack)) return 'target_is_current';
    if (this.switches.some((s) => s.env === envSlug)) return 'operation_in_progress';
    return undefined;
  }

  /** The switch itself: every affected domain to the target at once; rolled back or back to normal. */
  applySwitch(action: 'rollback' | 'promote', envSlug: string, targetId: string): void {
    const env = this.env(envSlug);
    const target = this.dep(targetId);
    if (target === undefined) throw new Error('model: switch to a missing deployment');
    const previous = env.current;
    if (!(action === 'promote' && previous === targetId) && previous !== undefined) {
      const newestOfBranch = this.deps
        .filter(
          (d) =>
            d.env === envSlug &&
            d.branch === target.branch &&
            (d.status === 'ready' || d.status === 'standby'),
        )
        .sort((a, b) => b.order - a.order)[0];
      this.moving(() => {
        for (const dom of this.doms) {
          if (dom.env !== envSlug) continue;
          const moves =
            dom.stickiness === 'live' ||
            dom.stickiness === 'environment' ||
            (dom.stickiness === 'branch' && dom.dep === previous && dom.branch === target.branch) ||
            (action === 'promote' &&
              newestOfBranch?.id === target.id &&
              dom.stickiness === 'branch' &&
              dom.branch === target.branch);
          if (moves) dom.dep = targetId;
        }
        env.current = targetId;
      });
      const prev = this.dep(previous);
      if (prev) prev.stoppedServingAt = this.now;
    }
    target.frozen = false;
    env.rolledBack = action === 'rollback';
    if (action === 'promote') for (const d of this.deps) if (d.env === envSlug) d.frozen = false;
  }

  /** A reactivation ended: the switch goes through if nothing it was planned on changed meanwhile. */
  finishSwitch(s: MSwitch): boolean {
    this.switches = this.switches.filter((x) => x !== s);
    const env = this.env(s.env);
    const target = this.dep(s.targetId);
    if (target === undefined || (target.status !== 'ready' && target.status !== 'standby')) return false;
    if (env.current !== s.basisCurrent || env.rolledBack !== s.basisRolledBack) return false;
    if (target.id === env.current && !(s.action === 'promote' && env.rolledBack)) return false;
    if (target.status === 'standby') {
      target.status = 'ready';
      target.stoppedServingAt = undefined;
      target.lastRequestAt = this.now;
    }
    this.applySwitch(s.action, s.env, s.targetId);
    return true;
  }

  finishWake(id: string): void {
    this.wakes = this.wakes.filter((w) => w.id !== id);
    const d = this.dep(id);
    if (d?.status !== 'standby') return;
    d.status = 'ready';
    d.lastRequestAt = this.now;
  }

  /** Times something is due: the next tick, builds, reactivations, wake-ups. */
  pendingTimes(): number[] {
    return [
      ...this.deps
        .filter((d) => d.status === 'building' && d.buildDoneAt !== undefined)
        .map((d) => d.buildDoneAt as number),
      ...this.switches.map((s) => s.doneAt),
      ...this.wakes.map((w) => w.doneAt),
    ];
  }

  /** Whether something else is due at `t` (the platform's order among equal times is not the model's). */
  collides(t: number): boolean {
    return (t >= this.nextTickAt && (t - this.nextTickAt) % TICK === 0) || this.pendingTimes().includes(t);
  }

  nextEvent(): number {
    return Math.min(this.nextTickAt, ...this.pendingTimes());
  }

  /** What the router must answer for a domain: the running deployment, or 503. */
  answer(hostname: string): { status: number; deploymentId: string | undefined } {
    const dom = this.doms.find((d) => d.hostname === hostname);
    if (dom?.dep === undefined) return { status: 404, deploymentId: undefined };
    const d = this.dep(dom.dep);
    // A standby target being reactivated already has its upstream running.
    const starting = d?.status === 'standby' && this.switches.some((s) => s.targetId === d.id);
    if (d?.status === 'ready' || starting) return { status: 200, deploymentId: dom.dep };
    return { status: 503, deploymentId: undefined };
  }
}

/** A GET as a visitor (traffic: resets the idle clock, wakes an idle preview deployment). */
function visit(port: number, host: string): Promise<{ status: number; deploymentId: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/', headers: { host }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => {
          const id = res.headers['x-deployment-id'];
          resolve({
            status: res.statusCode ?? 0,
            deploymentId: typeof id === 'string' && id !== 'none' ? id : undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200_000; i++) {
    if (await done()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** One seeded sequence; throws with the seed and the steps when the platform and the model disagree. */
async function replay(seed: number, steps = STEPS): Promise<void> {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const log: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'sy-local-model-'));
  const stateFile = join(dir, 'state.json');
  const clock = new ManualClock();
  const start = clock.now();
  let local: LocalPlatform | undefined;
  // The router goes with the platform on a restart (one process): a fresh one, with no upstream running.
  const newRouter = () =>
    new TrafficRouter({ clock, warmSockets: 1, wake: (id) => local?.wake(id) ?? Promise.resolve(false) });
  let router = newRouter();
  cleanups.push(async () => {
    await local?.close();
    await router.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let port = await router.listen();
  const openPlatform = () =>
    LocalPlatform.open({ clock, stateFile, traffic: router, buildTimeMs: BUILD, reactivationTimeMs: REACT });
  local = await openPlatform();
  const p = () => local as LocalPlatform;
  const model = new Model(p().dump(), clock.now());

  /** Moves both clocks to `to`, one due event at a time, each fully handled before the next. */
  async function advanceTo(to: number): Promise<void> {
    for (;;) {
      const next = model.nextEvent();
      if (next > to) break;
      await clock.advance(next - clock.now());
      model.now = next;
      for (const d of model.deps.filter((x) => x.status === 'building' && x.buildDoneAt === next)) {
        await until(
          `the build of ${d.id}`,
          async () => (await p().getDeployment(d.id))?.status !== 'building',
        );
        model.buildDone(d);
      }
      for (const s of model.switches.filter((x) => x.doneAt === next)) {
        let state = '';
        await until(`the ${s.action} to ${s.targetId}`, async () => {
          state = (await p().operation(s.ref)).state;
          return state === 'succeeded' || state === 'failed';
        });
        // It fails when what it was planned on changed meanwhile (a push went live, the target stopped).
        const switched = model.finishSwitch(s);
        log.push(`  (at +${clock.now() - start} ms: the ${s.action} to ${s.targetId} ${state})`);
        expect(state, `the ${s.action} to ${s.targetId} after its reactivation`).toBe(
          switched ? 'succeeded' : 'failed',
        );
      }
      for (const w of model.wakes.filter((x) => x.doneAt === next)) {
        await until(
          `the wake-up of ${w.id}`,
          async () => (await p().getDeployment(w.id))?.status !== 'standby',
        );
        model.finishWake(w.id);
      }
      if (next === model.nextTickAt) {
        model.tick();
        model.nextTickAt += TICK;
      }
    }
    await clock.advance(to - clock.now());
    model.now = to;
  }

  /** Steps the clock by a millisecond until what starts now ends on no other due time. */
  async function nudge(...durations: number[]): Promise<void> {
    while (durations.some((ms) => model.collides(clock.now() + ms))) await advanceTo(clock.now() + 1);
  }

  /** Whatever was refused must have changed nothing. */
  async function refused(action: () => Promise<unknown>, expected: string): Promise<void> {
    const before = p().dump();
    const err = await action().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err === undefined) throw new Error(`accepted what must be refused (${expected})`);
    expect((err as { code?: string }).code, String(err)).toBe(expected);
    expect(p().dump(), 'a refused action changed the state').toEqual(before);
  }

  async function compare(): Promise<void> {
    const state = p().dump();
    const serving = model.serving();
    for (const env of model.envs.values()) {
      const snap = await p().snapshot(env.slug);
      expect(snap.environment.currentDeploymentId, `${env.slug}: current`).toBe(env.current);
      expect(snap.environment.rolledBack, `${env.slug}: rolled back`).toBe(env.rolledBack);
      expect(
        Object.fromEntries(snap.deployments.map((d) => [d.id, d.status]).sort()),
        `${env.slug}: deployment statuses`,
      ).toEqual(
        Object.fromEntries(
          model.deps
            .filter((d) => d.env === env.slug)
            .map((d) => [d.id, d.status])
            .sort(),
        ),
      );
      const routes = Object.fromEntries(
        (await p().routing(env.slug)).map((r) => [r.hostname, r.deploymentId]),
      );
      expect(routes, `${env.slug}: routing`).toEqual(
        Object.fromEntries(model.doms.filter((d) => d.env === env.slug).map((d) => [d.hostname, d.dep])),
      );
      // The environment's domains point to one deployment, the current one, which serves.
      for (const d of snap.domains) {
        if (d.stickiness === 'live' || d.stickiness === 'environment')
          expect(d.deploymentId, `${d.hostname} follows ${env.slug}'s current`).toBe(env.current);
      }
      const current = snap.deployments.find((d) => d.id === env.current);
      if (current !== undefined) {
        // Production's current never idles; preview's idles after six hours without a request.
        expect(
          env.kind === 'production' ? ['ready'] : ['ready', 'standby'],
          `${env.slug}'s current ${current.id}`,
        ).toContain(current.status);
      }
    }
    for (const d of state.deployments) {
      const m = model.dep(d.id);
      // Pushed while rolled back, never switched to: no environment or branch domain by itself.
      if (m?.frozen)
        expect(
          state.domains.filter((x) => x.deploymentId === d.id).map((x) => x.stickiness),
          `${d.id} became ready while rolled back`,
        ).toEqual(['deployment']);
      // Production: a ready deployment not serving has not been out of service for 30 minutes yet.
      if (d.status === 'ready' && d.environment === 'production' && !serving.has(d.id))
        expect(
          clock.now() - (d.stoppedServingAt ?? d.readyAt ?? d.createdAt),
          `${d.id} not in standby`,
        ).toBeLessThan(STANDBY_AFTER + TICK);
    }
  }

  async function checkRouter(): Promise<void> {
    // Probes (marked, so not traffic: they neither wake nor keep awake), all at once.
    const hosts = [...model.doms.map((d) => d.hostname), 'nowhere.acme.localhost'];
    const answers = await Promise.all(hosts.map((h) => probe(port, h)));
    expect(Object.fromEntries(hosts.map((h, i) => [h, answers[i]])), "the router's answers").toEqual(
      Object.fromEntries(hosts.map((h) => [h, model.answer(h)])),
    );
  }

  const describeDep = (id: string) => {
    const d = model.dep(id);
    return d === undefined ? id : `${id} (#${d.order} ${d.env}/${d.branch} ${d.status})`;
  };

  let step = 0;
  /** Where the running step's line is in the log (numbered once the step is done, or on failure). */
  let first = 0;
  try {
    for (step = 1; step <= steps; step++) {
      first = log.length;
      const r = rand();
      const envSlug = pick(['production', 'preview']);
      if (r < 0.22) {
        // Production's own branch mostly, and a hotfix branch that only gets its branch domain.
        const branch =
          envSlug === 'production'
            ? rand() < 0.75
              ? 'main'
              : 'hotfix'
            : pick(['feature-search', 'feature-x']);
        const fails = rand() < 0.2;
        await nudge(BUILD);
        const d = await p().push({ environment: envSlug, branch, fail: fails });
        const own = (await p().routing(envSlug)).find(
          (x) => x.deploymentId === d.id && x.stickiness === 'deployment',
        );
        log.push(`push ${envSlug}/${branch}${fails ? ' (fails)' : ''} → ${d.id}`);
        model.push(envSlug, branch, fails, d.id, own?.hostname ?? '?');
      } else if (r < 0.47) {
        const ms = pick([400, 1500, 45_000, 10 * MIN, 29 * MIN, 31 * MIN, 2 * HOUR, 6 * HOUR + 5 * MIN]);
        log.push(`advance ${ms} ms`);
        await advanceTo(clock.now() + ms);
      } else if (r < 0.67) {
        const action = rand() < 0.6 ? 'rollback' : 'promote';
        const roll = rand();
        const targetId =
          roll < 0.75
            ? pick(model.deps.filter((d) => d.env === envSlug)).id
            : roll < 0.9
              ? pick(model.deps.filter((d) => d.env !== envSlug)).id
              : 'dep_nosuch';
        log.push(`${action} ${envSlug} → ${describeDep(targetId)}`);
        const refusal = model.refusal(action, envSlug, targetId);
        if (refusal !== undefined) {
          log[log.length - 1] += ` → refused: ${refusal}`;
          await refused(
            () =>
              action === 'rollback'
                ? p().rollback({ environment: envSlug, targetId })
                : p().promote({ environment: envSlug, targetId }),
            refusal,
          );
        } else {
          await nudge(REACT);
          const other = envSlug === 'production' ? 'preview' : 'production';
          const otherBefore = [await p().snapshot(other), await p().routing(other)];
          const standby = model.dep(targetId)?.status === 'standby';
          const sleepers = clock.pending;
          const env = model.env(envSlug);
          const ref = await (action === 'rollback'
            ? p().rollback({ environment: envSlug, targetId })
            : p().promote({ environment: envSlug, targetId }));
          log[log.length - 1] += standby ? ' → reactivating' : ' → switched';
          if (standby) {
            // Seed: a standby deployment is reactivated first, which takes a little longer: a step of its own.
            await until('the reactivation to start', async () => clock.pending > sleepers);
            expect((await p().operation(ref)).state, 'a standby target is reactivated first').toBe(
              'reactivating',
            );
            model.switches.push({
              action,
              env: envSlug,
              targetId,
              doneAt: clock.now() + REACT,
              basisCurrent: env.current,
              basisRolledBack: env.rolledBack,
              ref,
            });
          } else {
            await until(`the ${action}`, async () => {
              const state = (await p().operation(ref)).state;
              return state === 'succeeded' || state === 'failed';
            });
            expect((await p().operation(ref)).state).toBe('succeeded');
            model.applySwitch(action, envSlug, targetId);
            // Only the environment where it was triggered changes.
            expect([await p().snapshot(other), await p().routing(other)], `${other} unaffected`).toEqual(
              otherBefore,
            );
          }
        }
      } else if (r < 0.79) {
        // A visitor: previews' domains mostly (the idle rule), production's sometimes.
        const doms = model.doms.filter((d) => d.env === (rand() < 0.8 ? 'preview' : 'production'));
        const dom = pick(doms);
        const d = dom.dep === undefined ? undefined : model.dep(dom.dep);
        log.push(`visit ${dom.hostname} → ${dom.dep === undefined ? 'nothing' : describeDep(dom.dep)}`);
        // A standby deployment being reactivated by a switch already runs: it answers, nothing wakes.
        const reactivating = model.switches.some((s) => s.targetId === d?.id);
        if (d?.status === 'standby' && model.env(d.env).kind === 'preview' && !reactivating) {
          // An idle preview deployment is woken by the request, which waits meanwhile.
          log[log.length - 1] += ' → wakes it';
          await nudge(REACT);
          const sleepers = clock.pending;
          const answer = visit(port, dom.hostname);
          await until('the wake-up to start', async () => clock.pending > sleepers);
          model.wakes.push({ id: d.id, doneAt: clock.now() + REACT });
          await advanceTo(clock.now() + REACT);
          expect(await answer, `a visit to idle ${dom.hostname}`).toEqual({
            status: 200,
            deploymentId: d.id,
          });
        } else {
          const expected = model.answer(dom.hostname);
          expect(await visit(port, dom.hostname), `a visit to ${dom.hostname}`).toEqual(expected);
          if (d?.status === 'ready') d.lastRequestAt = clock.now();
        }
      } else if (r < 0.92) {
        const roll = rand();
        const targetId = roll < 0.95 ? pick(model.deps).id : 'dep_nosuch';
        const d = model.dep(targetId);
        log.push(`stop ${describeDep(targetId)}`);
        if (d === undefined) await refused(() => p().stop(targetId), 'unknown_deployment');
        else if (model.env(d.env).current === targetId)
          await refused(() => p().stop(targetId), 'target_is_current');
        else {
          await p().stop(targetId);
          if (d.status !== 'failed') d.status = 'stopped';
        }
      } else {
        log.push('restart from the state file');
        // The new maintenance ticks count from the restart: keep pending builds off them.
        while (model.pendingTimes().some((t) => (t - clock.now()) % TICK === 0))
          await advanceTo(clock.now() + 1);
        const interrupted = model.switches.map((s) => s.ref);
        await p().close();
        await router.close();
        router = newRouter();
        port = await router.listen();
        local = await openPlatform();
        for (const ref of interrupted) {
          // Ended by the shutdown, nothing switched; asked again, it may go through.
          expect(
            await p().operation(ref),
            `${ref.action} to ${ref.targetId} across the restart`,
          ).toMatchObject({
            state: 'failed',
            error: { retryable: true },
          });
        }
        // Switches under way end with the process (interrupted: nothing switched).
        model.switches = [];
        model.tick();
        model.nextTickAt = clock.now() + TICK;
      }
      log[first] = `${step}. ${log[first]}`;
      await compare();
      if (step % ROUTER_CHECK_EVERY === 0) await checkRouter();
    }
    // Let everything under way end, then ask the router once more.
    await advanceTo(clock.now() + 2 * TICK);
    await compare();
    await checkRouter();
  } catch (e) {
    // The seed and the steps so far, in front of the assertion's own message (its diff is kept).
    if (log[first] !== undefined && !log[first]?.startsWith(`${step}. `))
      log[first] = `${step}. ${log[first]}`;
    const steps = log.join('\n');
    const prefix = `seed ${seed} (RANDOM_SEED=${seed} replays it), step ${step}`;
    if (e instanceof Error) {
      e.message = `${prefix}: ${e.message}\nsteps:\n${steps}`;
      throw e;
    }
    throw new Error(`${prefix}: ${String(e)}\nsteps:\n${steps}`);
  }
}

/** RANDOM_SEED=<n> replays one sequence; MODEL_SEQUENCES=<n> runs more of them (a longer hunt). */
const stepsPerSequence = Number(process.env.MODEL_STEPS ?? STEPS);
const seeds =
  process.env.RANDOM_SEED !== undefined
    ? [Number(process.env.RANDOM_SEED)]
    : Array.from({ length: Number(process.env.MODEL_SEQUENCES ?? SEQUENCES) }, (_, i) => 0x5eed + i * 7919);

describe('local platform against a model of the seed (seeded random sequences)', () => {
  for (const seed of seeds) {
    it(`seed ${seed}: ${STEPS} random steps agree with the model`, async () => {
      await replay(seed, stepsPerSequence);
    });
  }
});
