/**
 * One Reporter over every connected chat surface: each job's message refs are routed to the surface
 * that posted them; a failing surface never fails the others (or the switch).
 */
import type { Logger } from '../src/log.js';
import type { MessageRef, Progress, Reporter, Surface } from '../src/progress.js';

export function compositeReporter(reporters: Partial<Record<Surface, Reporter>>, logger: Logger): Reporter {
  return {
    async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
      const bySurface = new Map<Surface, MessageRef[]>();
      for (const m of messages) bySurface.set(m.surface, [...(bySurface.get(m.surface) ?? []), m]);
      await Promise.all(
        [...bySurface].map(async ([surface, refs]) => {
          const reporter = reporters[surface];
          if (!reporter) return;
          try {
            await reporter.report(progress, refs);
          } catch (e) {
            logger.warn(
              { err: e, surface, jobId: progress.jobId, planId: progress.planId },
              'progress report failed',
            );
          }
        }),
      );
    },
  };
}
