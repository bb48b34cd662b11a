/**
 * A real (pino) logger, made by `createLogger`, whose lines a test reads (`lines`, parsed) and waits
 * for (`waitFor`) instead of sleeping.
 */
import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../../src/log.js';

/** One JSON log line, parsed. */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export class CapturedLog {
  readonly lines: LogLine[] = [];
  private readonly events = new EventEmitter();
  readonly logger: Logger;

  constructor(level = 'info') {
    this.logger = createLogger({
      level,
      pretty: false,
      destination: {
        write: (line: string) => {
          const parsed = JSON.parse(line) as LogLine;
          this.lines.push(parsed);
          this.events.emit('line', parsed);
          return true;
        },
      } as unknown as NodeJS.WritableStream,
    });
  }

  /** Resolves with the lines matching `match` once there are `count` of them. */
  waitFor(match: (l: LogLine) => boolean, count = 1): Promise<LogLine[]> {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.lines.filter(match);
        if (found.length < count) return false;
        this.events.off('line', check);
        resolve(found.slice(0, count));
        return true;
      };
      if (!check()) this.events.on('line', check);
    });
  }
}
