/**
 * The after-ack work of Slack handlers (planning, posting, editing), run with bounded concurrency so a
 * burst of commands or clicks cannot starve the acks themselves: an ack is the only thing Slack times
 * (3 s), while a confirmation may appear a moment later. The backlog is bounded; beyond it a handler is
 * told "busy" at once and says so to the user instead of queueing without limit. Errors of a task are
 * the task's own business (handlers catch and reply); a stray one is logged, never thrown.
 *
 * A task hands what only waits on Slack's pacing (an edit of the clicked message queued on the
 * reporter's lane, which may sit out a `Retry-After`) to `track` instead of awaiting it: it then holds
 * no slot, so rate-limited edits never stall later commands, and `idle()` still waits for it. A post
 * Slack rate-limited is tried again with `later`: a new task once its `Retry-After` has passed, holding
 * no slot meanwhile but counted in the backlog, so the bound stays true.
 */
import { type Clock, systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';

export interface WorkQueueOptions {
  /** Tasks running at once. */
  readonly concurrency?: number;
  /** Tasks waiting beyond which `run` refuses. */
  readonly maxPending?: number;
  readonly logger?: Logger;
  /** Times the waits of `later`. */
  readonly clock?: Clock;
}

/** Defaults (STYLE 6). */
export const workQueueDefaults = {
  concurrency: 8,
  maxPending: 10_000,
  logger: silentLogger,
  clock: systemClock,
} as const satisfies Required<WorkQueueOptions>;

/** Bounded FIFO of after-ack tasks (see the module header). */
export class WorkQueue {
  private readonly concurrency: number;
  private readonly maxPending: number;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly waiting: (() => Promise<void>)[] = [];
  private running = 0;
  /** Tasks handed to `later`, waiting for their time: in the backlog, holding no slot. */
  private deferred = 0;
  /** Work handed to `track`: waited for by `idle()`, holding no slot. */
  private tracked = 0;
  private readonly idleWaiters = new Set<() => void>();
  private readonly tasksIdleWaiters = new Set<() => void>();

  constructor(opts: WorkQueueOptions = {}) {
    this.concurrency = Math.max(1, opts.concurrency ?? workQueueDefaults.concurrency);
    this.maxPending = opts.maxPending ?? workQueueDefaults.maxPending;
    this.logger = opts.logger ?? workQueueDefaults.logger;
    this.clock = opts.clock ?? workQueueDefaults.clock;
  }

  /** Tasks waiting or running, and tracked work not yet settled. */
  get size(): number {
    return this.tasks + this.tracked;
  }

  /** Tasks waiting (for a slot or for their time) or running (tracked work aside). */
  private get tasks(): number {
    return this.waiting.length + this.deferred + this.running;
  }

  /**
   * Follows `work` that a task started and does not wait for (see the module header): it takes no
   * slot, `idle()` waits for it, and a failure is logged (as `what`), never thrown.
   */
  track(work: Promise<void>, what: string): void {
    this.tracked += 1;
    work
      .catch((e: unknown) => this.logger.error({ err: e }, `slack ${what} failed`))
      .finally(() => {
        this.tracked -= 1;
        this.settleIdle();
      });
  }

  /**
   * Schedules `task` to start on a later turn of the event loop (so a handler can schedule, then ack,
   * and the ack goes out first); false (and nothing scheduled) when the backlog is full. The task
   * counts as pending from this call on, so `idle()` never misses it.
   */
  run(task: () => Promise<void>): boolean {
    if (this.waiting.length + this.deferred >= this.maxPending) return false;
    this.waiting.push(task);
    setImmediate(() => this.pump());
    return true;
  }

  /**
   * Runs `task` as a new task once `delayMs` has passed (a post Slack rate-limited, tried again after
   * its `Retry-After`): meanwhile it holds no slot, and counts as waiting for `run`'s bound, `idle()`
   * and `tasksIdle()`. Never refused: it carries on a task the queue accepted, which ends as it is
   * handed over (so the backlog grows by at most one task per slot beyond `maxPending`).
   */
  later(delayMs: number, task: () => Promise<void>): void {
    this.deferred += 1;
    void this.clock.sleep(Math.max(0, delayMs)).then(() => {
      this.deferred -= 1;
      this.waiting.push(task);
      this.pump();
    });
  }

  /** Resolves once nothing is waiting or running, tracked work included (tests, benchmarks). */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.add(resolve));
  }

  /**
   * Resolves once no task is waiting or running, whatever tracked work is left (shutdown: a task is a
   * command or click Slack was told is received, and will not send again; tracked work only waits on
   * Slack's pacing, and shutdown bounds its wait).
   */
  tasksIdle(): Promise<void> {
    if (this.tasks === 0) return Promise.resolve();
    return new Promise((resolve) => this.tasksIdleWaiters.add(resolve));
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const task = this.waiting.shift();
      if (!task) break;
      this.running += 1;
      task()
        .catch((e: unknown) => this.logger.error({ err: e }, 'slack after-ack task failed'))
        .finally(() => {
          this.running -= 1;
          this.pump();
          this.settleIdle();
        });
    }
  }

  private settleIdle(): void {
    if (this.tasks === 0) {
      for (const resolve of this.tasksIdleWaiters) resolve();
      this.tasksIdleWaiters.clear();
    }
    if (this.size !== 0) return;
    for (const resolve of this.idleWaiters) resolve();
    this.idleWaiters.clear();
  }
}
