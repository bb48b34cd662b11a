/**
 * The after-ack work of Slack handlers (planning, posting, editing), run with bounded concurrency so a
 * burst of commands or clicks cannot starve the acks themselves: an ack is the only thing Slack times
 * (3 s), while a confirmation may appear a moment later. The backlog is bounded; beyond it a handler is
 * told "busy" at once and says so to the user instead of queueing without limit. Errors of a task are
 * the task's own business (handlers catch and reply); a stray one is logged, never thrown.
 */
import { type Logger, silentLogger } from '../../src/log.js';

export interface WorkQueueOptions {
  /** Tasks running at once. */
  readonly concurrency?: number;
  /** Tasks waiting beyond which `run` refuses. */
  readonly maxPending?: number;
  readonly logger?: Logger;
}

/** Defaults (STYLE 6). */
export const workQueueDefaults = {
  concurrency: 8,
  maxPending: 10_000,
  logger: silentLogger,
} as const satisfies Required<WorkQueueOptions>;

/** Bounded FIFO of after-ack tasks (see the module header). */
export class WorkQueue {
  private readonly concurrency: number;
  private readonly maxPending: number;
  private readonly logger: Logger;
  private readonly waiting: (() => Promise<void>)[] = [];
  private running = 0;
  private readonly idleWaiters = new Set<() => void>();

  constructor(opts: WorkQueueOptions = {}) {
    this.concurrency = Math.max(1, opts.concurrency ?? workQueueDefaults.concurrency);
    this.maxPending = opts.maxPending ?? workQueueDefaults.maxPending;
    this.logger = opts.logger ?? workQueueDefaults.logger;
  }

  /** Tasks waiting or running. */
  get size(): number {
    return this.waiting.length + this.running;
  }

  /**
   * Schedules `task` to start on a later turn of the event loop (so a handler can schedule, then ack,
   * and the ack goes out first); false (and nothing scheduled) when the backlog is full. The task
   * counts as pending from this call on, so `idle()` never misses it.
   */
  run(task: () => Promise<void>): boolean {
    if (this.waiting.length >= this.maxPending) return false;
    this.waiting.push(task);
    setImmediate(() => this.pump());
    return true;
  }

  /** Resolves once nothing is waiting or running (shutdown, tests, benchmarks). */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.add(resolve));
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
          if (this.size === 0) {
            for (const resolve of this.idleWaiters) resolve();
            this.idleWaiters.clear();
          }
        });
    }
  }
}
