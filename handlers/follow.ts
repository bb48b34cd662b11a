/**
 * Following switches run elsewhere: a bot process subscribes to the progress every switch worker
 * publishes (BullMQ job progress through `SwitchQueue.onProgress`) and hands it to a surface whose
 * messages live only in this process — the console. Which worker runs the job does not matter (the
 * bot's own, `npm run worker`, or none here at all with `SWITCHYARD_WORKER=off`). Slack and Discord
 * messages are not edited here: the worker running the job edits them with its own Reporter, so each
 * of those messages is edited by exactly one process per progress state (docs/jobs.md, "Scaling out").
 */
import type { Logger } from '../src/log.js';
import type { MessageRef, Progress, Reporter, Surface } from '../src/progress.js';
import type { SwitchQueue } from '../src/queue.js';

/** Options of `followProgress`. */
export interface FollowProgressOptions {
  readonly queue: Pick<SwitchQueue, 'onProgress' | 'messages'>;
  /** Only this surface's refs are delivered (the console: its messages exist in this process only). */
  readonly surface: Surface;
  /** The surface's Reporter; it must ignore refs of messages it does not hold (another replica's). */
  readonly reporter: Reporter;
  readonly logger: Logger;
}

/** A running follower. */
export interface ProgressFollower {
  /** Stops following and waits for the edits already under way. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Follows every switch's progress and delivers it to `reporter` for the job's `surface` refs. Updates
 * of one job are delivered in the order they were published, one after the other; when several are
 * waiting, only the newest is delivered (each carries the whole state). Resolves once subscribed.
 */
export async function followProgress(opts: FollowProgressOptions): Promise<ProgressFollower> {
  const { queue, surface, reporter, logger } = opts;
  /** Per job: the tail of its delivery chain and the newest progress received. */
  const jobs = new Map<string, { tail: Promise<void>; newest: Progress }>();
  let stopped = false;

  const deliver = async (progress: Progress): Promise<void> => {
    const entry = jobs.get(progress.jobId);
    if (stopped || entry?.newest !== progress) return; // a newer state is queued behind this one
    const refs = (await queue.messages(progress.jobId)) ?? [];
    const mine: MessageRef[] = refs.filter((r) => r.surface === surface);
    if (mine.length > 0) await reporter.report(progress, mine);
  };

  const off = await queue.onProgress((progress) => {
    if (stopped) return;
    const previous = jobs.get(progress.jobId)?.tail ?? Promise.resolve();
    const tail: Promise<void> = previous
      .then(() => deliver(progress))
      .catch((e: unknown) =>
        logger.warn(
          { err: e, surface, jobId: progress.jobId, planId: progress.planId },
          'following progress failed',
        ),
      )
      .finally(() => {
        if (jobs.get(progress.jobId)?.tail === tail) jobs.delete(progress.jobId);
      });
    jobs.set(progress.jobId, { tail, newest: progress });
  });

  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        stopped = true;
        off();
        await Promise.all([...jobs.values()].map((j) => j.tail));
      })();
      return stopping;
    },
  };
}
