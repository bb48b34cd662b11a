/**
 * Structured logging: one JSON line per event (pino), pretty when stdout is a terminal. Secrets are
 * redacted by key name wherever they appear, so a token never reaches a log line.
 */
import { type Logger, pino } from 'pino';

export type { Logger };

const REDACT = [
  '*.token',
  '*.botToken',
  '*.appToken',
  '*.signingSecret',
  '*.rootKey',
  '*.secret',
  '*.authorization',
  '*.headers.authorization',
  'headers.authorization',
  'SLACK_BOT_TOKEN',
  'SLACK_SIGNING_SECRET',
  'SLACK_APP_TOKEN',
  'DISCORD_TOKEN',
  'UNKEY_ROOT_KEY',
  'VERCEL_TOKEN',
  'ALERT_WEBHOOK_SECRET',
];

/** Strips anything that looks like a bearer token or a Slack/Discord/Unkey secret from free text. */
export function scrub(text: string): string {
  return text
    .replace(/\b(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)/g, '[redacted]')
    .replace(/(Bearer|Bot)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]')
    .replace(/\bunkey_[A-Za-z0-9]{8,}/g, '[redacted]');
}

export interface LoggerOptions {
  readonly level?: string;
  /** Human-readable single-line output (terminal); JSON otherwise. */
  readonly pretty?: boolean;
  readonly destination?: NodeJS.WritableStream;
}

/** Creates the process logger. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const pretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  const dest = opts.destination ?? process.stdout;
  const stream = pretty
    ? {
        write(line: string) {
          try {
            const o = JSON.parse(line) as Record<string, unknown>;
            const { level, time, msg, pid: _pid, hostname: _h, ...rest } = o;
            const names: Record<number, string> = {
              10: 'TRACE',
              20: 'DEBUG',
              30: 'INFO',
              40: 'WARN',
              50: 'ERROR',
              60: 'FATAL',
            };
            const t = new Date(Number(time)).toISOString().slice(11, 23);
            const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
            dest.write(`${t} ${names[Number(level)] ?? level} ${String(msg ?? '')}${extra}\n`);
          } catch {
            dest.write(line);
          }
        },
      }
    : dest;
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label, number) => ({ level: number, levelName: label }) },
    },
    stream as NodeJS.WritableStream,
  );
}

/** A logger that drops everything (tests that do not inspect logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
