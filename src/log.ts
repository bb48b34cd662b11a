/**
 * Structured logging: one JSON line per event (pino), pretty when stdout is a terminal. Secrets are
 * redacted by key name wherever they appear, so a token never reaches a log line; a logged error (`err`)
 * goes through `serializeError`, which also drops what libraries attach to their errors that may carry
 * a secret (the arguments of a failed Redis command: AUTH's password).
 */
import { type Logger, pino, stdSerializers } from 'pino';

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

/**
 * Keys of a logged error's fields (at any depth) whose values are credentials: an HTTP client's request
 * headers and config, a connection's options. Compared without case, `-` or `_`.
 */
const SECRET_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'password',
  'passwd',
  'token',
  'secret',
  'cookie',
  'setcookie',
  'apikey',
  'xapikey',
  'rootkey',
  'bottoken',
  'apptoken',
  'signingsecret',
  'clientsecret',
]);

/** How deep `serializeError` follows an error's fields (pino's own limit for a line is 5 levels). */
const ERROR_DEPTH = 6;

/**
 * pino's error serializer (type, message with its causes, stack, every other field), made safe for a
 * log line:
 *   - a failed command's arguments (`command.args`) are dropped, its name kept: ioredis attaches the
 *     command to the errors it emits, and a refused AUTH (a rotated or mistyped password, a user
 *     disabled for maintenance) carries `[user, password]`. At any depth: a cluster error's
 *     `lastNodeError`, an aggregate's errors, a wrapped cause;
 *   - fields named like a credential (`SECRET_KEYS`: an HTTP error's request headers) read `[redacted]`;
 *   - every string has the credentials of a URL (`redis://user:password@host`) masked and tokens
 *     scrubbed (`scrub`).
 */
export function serializeError(err: unknown): unknown {
  const serialized = stdSerializers.err(err as Error);
  // A record of an error already made safe (the CLI's `safeError`: a plain object whose `type` is the
  // error's name): pino names a plain object's type after its constructor, "Object".
  const type = (err as { type?: unknown } | null | undefined)?.type;
  if (!(err instanceof Error) && typeof type === 'string' && serialized !== err)
    (serialized as { type: string }).type = type;
  return sanitize(serialized, 0, new WeakSet());
}

function sanitize(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return maskCredentials(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Date || Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return value;
  if (seen.has(value)) return '[circular]';
  if (depth >= ERROR_DEPTH) return '[…]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => sanitize(v, depth + 1, seen));
    // What JSON would write of it (AxiosHeaders, URL), read instead of its internals.
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function' && !(value instanceof Error)) {
      const json: unknown = toJSON.call(value);
      if (json !== value) return sanitize(json, depth, seen);
    }
    // An error pino's serializer did not reach (inside a plain field): its message and stack too.
    const fields = value instanceof Error ? stdSerializers.err(value) : value;
    const out: Record<string, unknown> = {};
    // `for…in`: pino's serialized error keeps type, message and stack on its prototype.
    for (const key in fields) {
      const v = (fields as Record<string, unknown>)[key];
      if (v === undefined) continue;
      if (SECRET_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''))) out[key] = '[redacted]';
      else if (key === 'command' && isCommand(v)) out[key] = { name: v.name };
      else out[key] = sanitize(v, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** An ioredis command as attached to its errors: `{ name, args }`. */
function isCommand(v: unknown): v is { name: unknown } {
  return typeof v === 'object' && v !== null && 'name' in v && 'args' in v;
}

/**
 * The start of a URL's user info: a scheme with its slashes, also as mistyped (`redis:/`, `redis//`):
 * a mistyped URL is refused at start-up, and its refusal may be logged.
 */
const URL_START = /\b[a-z][a-z0-9+.-]{0,31}(?::\/\/?|\/\/)/gi;

/** Where a run of URL characters ends: at white space or the start of a path, query or fragment. */
const URL_STOP = /[\s/?#]/;

/**
 * A credential without a scheme: `user:password@host` or `:password@host` as one word (a Redis URL
 * written without `redis://`). A word with no `:` before its `@` is left alone: an e-mail address.
 */
const BARE_USERINFO = /(^|[\s"'(<=,;[])([^\s"'/?#@:]{0,256}:[^\s"'/?#]{0,256})@/g;

/**
 * How far past its colon the end of a password with a space in it is looked for (bounded, as every
 * scan here: a long line of `a:b` or `x.y.z` costs a pass, not a pass per character).
 */
const SPACED_PASSWORD_REACH = 200;

/** The index of the first character of `text` from `from` (before `to`) that matches `stop`, else `to`. */
function indexOfStop(text: string, from: number, stop: RegExp, to = text.length): number {
  const end = Math.min(to, text.length);
  for (let i = from; i < end; i++) if (stop.test(text.charAt(i))) return i;
  return end;
}

/**
 * Where the user info that starts at `start` (just after a scheme) ends: the index of its `@`, or -1
 * when there is none. The user info runs to the LAST `@` before the host: a password's own `@` written
 * unencoded (`redis://user:p@ss@host`) stays hidden. A `user:` not followed by a port is a password
 * with a character that ends a URL's host part unencoded (`/`, `?`, `#`, a space): the user info goes
 * on to the last `@` of its word, or past a space to the `@` on the same line, unless a path, query,
 * or fragment comes first (`http://host:3000 is down, ask ops@…` keeps its host).
 */
function userinfoEnd(text: string, start: number): number {
  const end = indexOfStop(text, start, URL_STOP);
  const word = text.slice(start, end);
  const at = word.lastIndexOf('@');
  if (at >= 0) return start + at;
  const colon = word.indexOf(':');
  // No colon, a port after it, or an IPv6 address (`[::1]:3000`): a host, not user info.
  if (colon < 0 || word.startsWith('[') || /^\d*$/.test(word.slice(colon + 1))) return -1;
  const wordEnd = indexOfStop(text, start, /\s/, start + SPACED_PASSWORD_REACH);
  const inWord = text.slice(start, wordEnd).lastIndexOf('@');
  if (inWord >= 0) return start + inWord;
  if (!/\s/.test(text.charAt(wordEnd))) return -1;
  const next = /^[^\n/?#@]*?@/.exec(text.slice(wordEnd, wordEnd + SPACED_PASSWORD_REACH));
  if (next === null) return -1;
  // The word holding that `@`, to its last `@`.
  const from = wordEnd + next[0].length;
  const last = text.slice(from, indexOfStop(text, from, URL_STOP)).lastIndexOf('@');
  return last >= 0 ? from + last : from - 1;
}

/**
 * `text` with the user info of every URL masked: `scheme://user:password@host` →
 * `scheme://***@host`, also with an unencoded `@` or a space in the password, a mistyped scheme
 * (`redis//…`, `redis:/…`) or none (`:password@host:6379`).
 */
function maskUrlCredentials(text: string): string {
  let out = '';
  let copied = 0;
  for (const m of text.matchAll(URL_START)) {
    const start = m.index + m[0].length;
    // Inside user info masked already (a second `://` in a password).
    if (m.index < copied) continue;
    const at = userinfoEnd(text, start);
    if (at < 0) continue;
    out += `${text.slice(copied, start)}***`;
    copied = at;
  }
  out += text.slice(copied);
  return out.replace(BARE_USERINFO, '$1***@');
}

/**
 * `text` with the credentials of any URL masked (`scheme://user:password@host` → `scheme://***@host`,
 * see `maskUrlCredentials` for the mistyped shapes), and tokens scrubbed: for free text a log line, an
 * error message or an answer shows (`serializeError` makes a logged `err` safe the same way).
 */
export function maskCredentials(text: string): string {
  return scrub(maskUrlCredentials(text));
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
      serializers: { err: serializeError },
      formatters: { level: (label, number) => ({ level: number, levelName: label }) },
    },
    stream as NodeJS.WritableStream,
  );
}

/** A logger that drops everything (tests that do not inspect logs). */
export const silentLogger: Logger = pino({ level: 'silent', serializers: { err: serializeError } });
