/**
 * Watching what the alert service decided, for the chat end-to-end tests: `observed(factory, log)`
 * wraps a REAL surface factory so that the AlertService it reaches through `ctx.alerts()` records
 * every result in `log` (the real service still does all the work). Tests then wait for "N alerts
 * handled" instead of sleeping, and can prove that an Events API retry never reached the service.
 */
import { EventEmitter } from 'node:events';
import type { SurfaceContext, SurfaceFactory } from '../../handlers/app.js';
import type { AlertService } from '../../src/alerts/service.js';
import type { AlertResult, ChatOrigin } from '../../src/alerts/types.js';

/** One `handle` call as the surface made it. */
export interface HandledAlert {
  readonly origin: ChatOrigin | undefined;
  readonly results: readonly AlertResult[];
}

/** Every alert the surfaces handed to the AlertService, in completion order. */
export class AlertLog {
  readonly handled: HandledAlert[] = [];
  private readonly events = new EventEmitter();

  record(entry: HandledAlert): void {
    this.handled.push(entry);
    this.events.emit('handled');
  }

  /** Results of every handled alert, flattened. */
  results(): AlertResult[] {
    return this.handled.flatMap((h) => h.results);
  }

  /** Resolves once `count` results exist (already or later); rejects after `timeoutMs` saying what came. */
  waitForCount(count: number, timeoutMs = 10_000): Promise<AlertResult[]> {
    if (this.results().length >= count) return Promise.resolve(this.results());
    return new Promise((resolve, reject) => {
      const on = () => {
        if (this.results().length < count) return;
        clearTimeout(timer);
        this.events.off('handled', on);
        resolve(this.results());
      };
      const timer = setTimeout(() => {
        this.events.off('handled', on);
        const seen = this.results()
          .map((r) => `${r.outcome}(${r.title})`)
          .join(', ');
        reject(new Error(`expected ${count} alert results within ${timeoutMs} ms; got: ${seen || 'none'}`));
      }, timeoutMs);
      this.events.on('handled', on);
    });
  }
}

/** The factory, with the AlertService it sees recording into `log`. */
export function observed(factory: SurfaceFactory, log: AlertLog): SurfaceFactory {
  return (ctx: SurfaceContext) =>
    factory({
      ...ctx,
      alerts: () => {
        const real = ctx.alerts();
        if (real === undefined) return undefined;
        // Same object underneath (prototype), only `handle` is wrapped to record the results.
        const watched = Object.create(real) as AlertService;
        watched.handle = async (alerts, origin) => {
          const results = await real.handle(alerts, origin);
          log.record({ origin, results });
          return results;
        };
        return watched;
      },
    });
}
