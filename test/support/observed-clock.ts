/**
 * A manual clock that announces each sleep, so a test advances time only once something waits (the
 * reporter's pacing, a Retry-After, a backoff) instead of guessing when it will.
 */
import { EventEmitter } from 'node:events';
import { ManualClock } from '../../src/clock.js';

export class ObservedClock extends ManualClock {
  readonly events = new EventEmitter();
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    const p = super.sleep(ms, signal);
    this.events.emit('sleep', ms);
    return p;
  }

  /** Resolves when something starts sleeping for exactly `ms` (subscribe before it happens). */
  sleepOf(ms: number): Promise<number> {
    return new Promise((resolve) => {
      const on = (n: number) => {
        if (n !== ms) return;
        this.events.off('sleep', on);
        resolve(n);
      };
      this.events.on('sleep', on);
    });
  }
}
