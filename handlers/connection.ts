/**
 * The connection state machine shared by the chat surfaces (Slack's SlackStartup, Discord's
 * DiscordConnection), which must let Switchyard start even when their chat service cannot be reached.
 *
 * A connection is `waiting` (not connected yet, or again: `problem` says why), `ready`, or `rejected`
 * (the service refused the configuration, e.g. the token: an operator must fix it and restart). It makes
 * one attempt at a time (`attempt()`; a second call joins the running one). `start()` waits a bounded
 * time for the first attempt; after that, failed attempts are retried in the background with backoff —
 * `retryMinMs`, doubling up to `retryMaxMs`, back to `retryMinMs` once ready or lost — until the
 * connection is ready, rejected or stopped. `ready()` resolves once it is ready and rejects when it is
 * rejected (or stopped, when `stop()` is given a reason).
 *
 * What an attempt does, what counts as rejected, and what is logged stay with each surface: its attempt
 * function ends by reporting `succeeded()`, `rejected()` or `unavailable()`, and must not reject.
 */
import { type Clock, systemClock, within } from '../src/clock.js';

/**
 * `ready`: connected; `waiting`: not connected (yet, or again), still trying — `problem` says why and
 * `attempts` counts attempts so far; `rejected`: the service refused the configuration — `problem` says what.
 */
export type ConnectionStatus =
  | { readonly state: 'ready' }
  | { readonly state: 'waiting'; readonly problem: string; readonly attempts: number }
  | { readonly state: 'rejected'; readonly problem: string };

export interface SurfaceConnectionOptions {
  /** First pause before the next attempt after a failed one; doubles up to `retryMaxMs`. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /** What `status()` says before an attempt has told more. */
  readonly problem: string;
  /** One attempt; ends with `succeeded()`, `rejected()` or `unavailable()` (or nothing when stopped). */
  readonly attempt: () => Promise<void>;
  /** Waits for `start()`'s bound and between attempts; default the system clock. */
  readonly clock?: Clock;
}

/** `1500` → `2 s`, `20` → `20 ms` (for "trying again in …"). */
export function duration(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

export class SurfaceConnection {
  /** Why the connection is waiting or rejected; a surface may say more while an attempt runs. */
  problem: string;
  private current: ConnectionStatus['state'] = 'waiting';
  private tries = 0;
  private rejection: Error | undefined;
  private stopReason: Error | undefined;
  private halted = false;
  /** Failed attempts are retried in the background (between `start()` and `stop()`). */
  private retrying = false;
  private delayMs: number;
  private inFlight: Promise<void> | undefined;
  private pause: AbortController | undefined;
  private readonly waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private readonly clock: Clock;

  constructor(private readonly opts: SurfaceConnectionOptions) {
    this.problem = opts.problem;
    this.delayMs = opts.retryMinMs;
    this.clock = opts.clock ?? systemClock;
  }

  get state(): ConnectionStatus['state'] {
    return this.current;
  }

  /** Attempts begun so far. */
  get attempts(): number {
    return this.tries;
  }

  get stopped(): boolean {
    return this.halted;
  }

  /** Whether an attempt is running. */
  get attempting(): boolean {
    return this.inFlight !== undefined;
  }

  status(): ConnectionStatus {
    if (this.current === 'ready') return { state: 'ready' };
    if (this.current === 'rejected') return { state: 'rejected', problem: this.problem };
    return { state: 'waiting', problem: this.problem, attempts: this.tries };
  }

  /** Resolves once ready; rejects once rejected, or stopped when `stop()` was given a reason. */
  ready(): Promise<void> {
    if (this.current === 'ready') return Promise.resolve();
    if (this.rejection) return Promise.reject(this.rejection);
    if (this.halted && this.stopReason) return Promise.reject(this.stopReason);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Begins an attempt while waiting and not stopped, or joins the running one; never rejects. */
  attempt(): Promise<void> {
    if (this.inFlight === undefined && this.current === 'waiting' && !this.halted) {
      this.tries += 1;
      this.inFlight = this.opts.attempt().finally(() => {
        this.inFlight = undefined;
      });
    }
    return this.inFlight ?? Promise.resolve();
  }

  /**
   * Waits at most `waitMs` for a first attempt and from then on retries in the background. Throws the
   * rejection when the service refused the configuration; otherwise returns ready or still waiting.
   */
  async start(waitMs: number): Promise<void> {
    this.halted = false;
    this.stopReason = undefined;
    this.retrying = true;
    await within(this.clock, waitMs, this.attempt(), undefined);
    if (this.rejection) throw this.rejection;
  }

  /**
   * No more attempts or retries (an attempt already running is the surface's to end). With a reason,
   * `ready()` waiters are rejected with it, and so is `ready()` until the next `start()`.
   */
  stop(reason?: Error): void {
    this.halted = true;
    this.retrying = false;
    this.cancelRetry();
    if (reason === undefined) return;
    this.stopReason = reason;
    for (const w of this.waiters.splice(0)) w.reject(reason);
  }

  /** The attempt connected (or the connection came back): ready, backoff reset, waiters resolved. */
  succeeded(): void {
    this.current = 'ready';
    this.delayMs = this.opts.retryMinMs;
    this.cancelRetry();
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** The service refused the configuration: no more retries; `ready()` rejects with `error`. */
  rejected(problem: string, error: Error): void {
    this.problem = problem;
    this.current = 'rejected';
    this.rejection = error;
    this.cancelRetry();
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  /**
   * The attempt could not reach the service: schedules the next one with backoff, or after
   * `notBeforeMs` when that is longer (the service said when to come back). Returns the pause before
   * it, or undefined when nothing is scheduled (stopped, or `start()` not called yet).
   */
  unavailable(problem: string, notBeforeMs = 0): number | undefined {
    this.problem = problem;
    if (!this.retrying || this.halted) return undefined;
    const retryInMs = Math.max(this.delayMs, notBeforeMs);
    this.delayMs = Math.min(this.delayMs * 2, this.opts.retryMaxMs);
    this.cancelRetry();
    const pause = new AbortController();
    this.pause = pause;
    const retry = () => {
      if (this.pause === pause) this.pause = undefined;
      void this.attempt();
    };
    if (this.clock === systemClock) {
      // A real pause must not keep the process alive by itself (a start that failed for another
      // reason, an embedder): an unref'd timer, cleared when cancelled.
      const timer = setTimeout(retry, retryInMs);
      timer.unref();
      pause.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    } else {
      this.clock.sleep(retryInMs, pause.signal).then(retry, () => undefined); // rejected: cancelled
    }
    return retryInMs;
  }

  /** A ready connection dropped: waiting again (for `problem`), backoff from `retryMinMs`. */
  lost(problem: string): void {
    this.current = 'waiting';
    this.problem = problem;
    this.delayMs = this.opts.retryMinMs;
  }

  private cancelRetry(): void {
    this.pause?.abort();
    this.pause = undefined;
  }
}
