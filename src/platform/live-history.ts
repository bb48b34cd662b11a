/**
 * What a platform that keeps no live history (Unkey, Vercel) still tells of how an environment's current
 * deployment went live, from its state alone: the deployment list, the rolled-back flag and, on Vercel,
 * the record of the last rollback or promote. Pure. The adapters put the result on the snapshot
 * (`EnvironmentSnapshot.derivedLive`), where only alert correlation reads it (src/alerts/correlate.ts).
 *
 * The reasoning: on such a platform a production deployment goes live by itself when it becomes ready,
 * unless the environment is rolled back. So when the environment is not rolled back and its current
 * deployment is the newest one that ever became ready, it went live by an automatic deploy when it
 * became ready, replacing the newest one before it. Anything else (rolled back now; a newer deployment
 * that was ready once; a switch recorded after it became ready) means a rollback or promote at a time the
 * platform does not say, and nothing is claimed. Times are intervals ([notBefore, notAfter]) as wide as
 * the platform leaves them: a made-up instant could make an old deployment look freshly deployed, and a
 * rollback suggested for it. docs/alerts.md ("Platforms without live history") says what follows.
 */
import type { Deployment, DerivedLive, Environment } from '../domain/types.js';

/** When a deployment became ready: no earlier than `notBefore`, no later than `notAfter` (Unix ms). */
export interface ReadyWindow {
  readonly notBefore: number;
  readonly notAfter: number;
}

/** The platform's record of its last rollback or promote (Vercel's `lastAliasRequest`). */
export interface LastSwitch {
  readonly via: 'rollback' | 'promote';
  /** The deployment traffic left (absent when the platform does not say). */
  readonly from?: string;
  readonly to: string;
  /** True once the switch finished moving traffic. */
  readonly succeeded: boolean;
  /** Unix ms. */
  readonly requestedAt: number;
}

export interface DeriveLiveInput {
  /** The platform's name in messages ("Unkey"). */
  readonly platform: string;
  readonly environment: Environment;
  /** The environment's deployments, in any order. */
  readonly deployments: readonly Deployment[];
  /** When the state was read (Unix ms): nothing went live later. */
  readonly readAt: number;
  /** When `d` became ready, as narrowly as the platform says; undefined when it does not say. */
  readonly readyWindow: (d: Deployment) => ReadyWindow | undefined;
  /**
   * The platform stops a deployment an automatic deploy replaced this long after (Unkey: 30 minutes);
   * absent when it keeps replaced deployments running (Vercel). Such a platform's running deployments
   * are evidence too: see `stillRunning`.
   */
  readonly stopsReplacedAfterMs?: number;
  /** The platform's record of its last rollback or promote, when it keeps one. */
  readonly lastSwitch?: LastSwitch;
  /** The longest a rollback or promote takes once requested: bounds when a succeeded one finished. */
  readonly switchTakesAtMostMs?: number;
}

/** Statuses of a deployment that was ready at some point, so may have served. */
function wasReady(d: Deployment): boolean {
  return d.status === 'ready' || d.status === 'standby' || d.status === 'stopped';
}

function newestFirst(a: Deployment, b: Deployment): number {
  return b.createdAt - a.createdAt;
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60_000);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

function list(ids: readonly string[]): string {
  return ids.length <= 1 ? (ids[0] ?? '') : `${ids.slice(0, -1).join(', ')} and ${ids.at(-1)}`;
}

/** How the current deployment of `input.environment` went live, as far as the platform's state says. */
export function deriveLive(input: DeriveLiveInput): DerivedLive {
  const { platform, environment: env, readAt } = input;
  const unknown = (why: string): DerivedLive => ({ platform, unknown: why });
  const id = env.currentDeploymentId;
  if (id === undefined) return unknown(`${env.slug} has no current deployment`);
  if (env.kind !== 'production') {
    return unknown(`${platform} keeps no live history, and ${env.slug} is not a production environment`);
  }
  const current = input.deployments.find((d) => d.id === id);
  if (current === undefined) return unknown(`it is not among the deployments ${platform} listed`);
  const job = input.lastSwitch;
  const takes = input.switchTakesAtMostMs ?? 0;

  // The platform's own record names the current deployment: it went live by that switch, at its time.
  if (job !== undefined && job.to === current.id) {
    // A switch from the deployment to itself (resuming automatic deploys) moved nothing: it says nothing
    // of when the deployment went live. So does one that did not finish, or a promote while rolled back.
    const moved = job.succeeded && job.from !== undefined && job.from !== current.id;
    if (!moved || (job.via === 'promote' && env.rolledBack)) {
      return unknown(`it was rolled back or promoted to, and ${platform} does not say when`);
    }
    return {
      platform,
      current: {
        deploymentId: current.id,
        via: job.via,
        notBefore: job.requestedAt,
        notAfter: Math.max(job.requestedAt, Math.min(readAt, job.requestedAt + takes)),
        previous: job.from,
      },
    };
  }
  if (env.rolledBack) {
    return unknown(`${env.slug} is rolled back to it, and ${platform} does not say since when`);
  }
  // Equal creation times leave the order open: such a deployment counts as newer.
  const newer = input.deployments
    .filter((d) => d.id !== current.id && d.createdAt >= current.createdAt && wasReady(d))
    .sort(newestFirst)[0];
  if (newer !== undefined) {
    return unknown(`it is older than ${newer.id}, so it was promoted or rolled back to`);
  }
  const ready = input.readyWindow(current);
  if (ready === undefined) return unknown(`${platform} does not say when it became ready`);
  // A switch recorded after it became ready (or while it may have) moved traffic elsewhere, or tried to;
  // it is current again by a way the platform does not record.
  if (job !== undefined && job.requestedAt + takes >= ready.notBefore) {
    return unknown(
      `${platform}'s last switch, to ${job.to}, came after it became ready, so it was promoted or rolled back to since`,
    );
  }
  const older = input.deployments
    .filter((d) => d.id !== current.id && d.createdAt < current.createdAt && wasReady(d))
    .sort(newestFirst);
  const predecessor = older[0];
  if (input.stopsReplacedAfterMs !== undefined) {
    const doubt = stillRunning(platform, older, ready, readAt, input.stopsReplacedAfterMs, input.readyWindow);
    if (doubt !== undefined) return unknown(doubt);
  }
  const previous = previousOf(older, predecessor, job, takes, input.readyWindow);
  return {
    platform,
    current: {
      deploymentId: current.id,
      via: 'deploy',
      notBefore: ready.notBefore,
      notAfter: Math.max(ready.notBefore, ready.notAfter),
      ...(previous === undefined ? {} : { previous }),
    },
  };
}

/**
 * On a platform that stops a deployment `stopAfterMs` after an automatic deploy replaced it (Unkey), the
 * deployments still running must fit automatic deploys: each older one was replaced when the next newer
 * one became ready, and only ones replaced less than `stopAfterMs` ago still run. The predecessor
 * running longer than that after the current one became ready is what a rollback and a promote leave
 * (the rollback schedules no stop for the deployment it leaves), not an automatic deploy. Two or more
 * older deployments running is what two automatic deploys within `stopAfterMs` leave, but also what a
 * rollback followed by a promote of a newer deployment leaves (the one rolled back from, and the one the
 * promote left), and the state tells these apart in nothing (all read `ready`; Unkey shows no scheduled
 * stop, and rewrites `updatedAt` on unrelated changes): nothing is claimed, and the clause says both
 * when their times fit automatic deploys. The returned clause says why; undefined when the running
 * deployments fit one automatic deploy.
 */
function stillRunning(
  platform: string,
  older: readonly Deployment[],
  ready: ReadyWindow,
  readAt: number,
  stopAfterMs: number,
  readyWindow: (d: Deployment) => ReadyWindow | undefined,
): string | undefined {
  const running: string[] = [];
  // Newest first: by automatic deploys, each one was replaced when the one just newer (the current one
  // for the first) became ready, so it runs until `stopAfterMs` after that at the latest.
  let replacedBy: ReadyWindow | undefined = ready;
  let fits = true;
  for (const d of older) {
    if (d.status === 'ready') {
      running.push(d.id);
      if (replacedBy === undefined || readAt - replacedBy.notAfter > stopAfterMs) fits = false;
    }
    replacedBy = readyWindow(d);
  }
  if (running.length > 1) {
    return fits
      ? `${list(running)} still run, as they do after automatic deploys within the last ${minutes(stopAfterMs)} and after a rollback and a promote, which ${platform}'s state does not tell apart, so it may have been promoted`
      : `${list(running)} still run, as they do after a rollback and a promote, so it may have been promoted`;
  }
  const predecessor = older[0];
  if (predecessor?.status === 'ready' && readAt - ready.notAfter > stopAfterMs) {
    return `${predecessor.id} still runs, though an automatic deploy has it stopped ${minutes(stopAfterMs)} after replacing it, so it was promoted or rolled back to`;
  }
  return undefined;
}

/**
 * The deployment live right before the current one went live by an automatic deploy: the newest one
 * before it, unless the platform's last switch says otherwise. After a promote to P, P served and then
 * each deployment that became ready after the promote finished; after a rollback (automatic deploys
 * resumed since, at a time not recorded) nothing is known. Undefined when unknown.
 */
function previousOf(
  older: readonly Deployment[],
  predecessor: Deployment | undefined,
  job: LastSwitch | undefined,
  takes: number,
  readyWindow: (d: Deployment) => ReadyWindow | undefined,
): string | undefined {
  if (job === undefined) return predecessor?.id;
  if (!job.succeeded || job.via === 'rollback') return undefined;
  const done = job.requestedAt + takes;
  let after: Deployment | undefined;
  for (const d of older) {
    const w = readyWindow(d);
    // Became ready while the promote may have been under way: which served last is open.
    if (w === undefined || (w.notBefore <= done && w.notAfter >= job.requestedAt)) return undefined;
    if (w.notBefore > done && after === undefined) after = d;
  }
  return after?.id ?? job.to;
}
