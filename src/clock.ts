/**
 * Injected time. Everything that reads the time or waits takes a Clock, so tests run the 30-minute
 * standby rule and six-hour idle rule instantly with a ManualClock.
 */

export interface Clock {
  /** Unix ms. */
  now(): number;
  /** Resolves after `ms` of this clock's time; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Milliseconds from an arbitrary origin that only move forward, at the pace of `sleep`, whatever
   * happens to the wall clock `now()` reads (an NTP correction, a VM resumed, an operator setting the
   * date can step that one forward or back). For measuring how long something took on this host, never
   * for a date. Optional: see `monotonicNow` for a clock without one.
   */
  monotonic?(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * `clock`'s monotonic reading (`Clock.monotonic`): what elapsed time on this host is measured with.
 * A clock without one (a test's wrapper of the system clock that shifts `now()`) is measured by the
 * process's monotonic clock, `performance.now()`, which its real-time sleeps keep pace with.
 */
export function monotonicNow(clock: Clock): number {
  return clock.monotonic?.() ?? performance.now();
}

/**
 * `work`'s value, or `fallback` once `ms` of `clock` time have passed, whichever comes first (the work
 * itself is not cancelled). A rejection of `work` before then is passed on.
 */
export async function within<T>(clock: Clock, ms: number, work: Promise<T>, fallback: T): Promise<T> {
  const cap = new AbortController();
  const late = clock.sleep(ms, cap.signal).then(
    () => fallback,
    () => fallback,
  );
  try {
    return await Promise.race([work, late]);
  } finally {
    cap.abort();
  }
}

interface Sleeper {
  at: number;
  resolve: () => void;
}

/** A clock that only moves when told to; sleepers wake in time order as it advances. */
export class ManualClock implements Clock {
  private current: number;
  private sleepers: Sleeper[] = [];

  constructor(start = Date.UTC(2026, 10, 29, 12, 0, 0)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  /** This clock's own time: it moves only when the test moves it, so measurements stay deterministic. */
  monotonic(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(signal?.reason);
      };
      // A sleep that ends normally lets go of the signal (a long-lived one would collect listeners).
      const sleeper: Sleeper = {
        at: this.current + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of pending sleeps (lets tests wait until code under test is parked on the clock). */
  get pending(): number {
    return this.sleepers.length;
  }

  /** Moves time forward, waking every sleeper due on the way (in order). */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (;;) {
      this.sleepers.sort((a, b) => a.at - b.at);
      const next = this.sleepers[0];
      if (!next || next.at > until) break;
      this.sleepers.shift();
      this.current = Math.max(this.current, next.at);
      next.resolve();
      // let the woken code run before waking the next one
      await new Promise<void>((r) => setImmediate(r));
    }
    this.current = until;
  }

  set(ms: number): void {
    this.current = ms;
  }
}
