/**
 * What the command-line entry points share (`npm start`: handlers/main.ts, `npm run worker`:
 * handlers/worker.ts):
 *   - loading the configuration, where a bad value ends the process with a message naming the key, the
 *     value and the expectation, and exit code 2 (also for a ConfigError found later, during start-up:
 *     a bad flag, a REDIS_URL pointing at a cluster node, a port already in use);
 *   - what a fatal error may put in a log line: its type, code, message and stack, with credentials in
 *     URLs masked, never its other fields (the TypeError of `new URL` carries the whole URL, password
 *     included, as `input`);
 *   - signals: the first SIGINT/SIGTERM shuts down gracefully (the active switch finishes), a second one
 *     forces the exit at once (exit 130 for SIGINT, 143 for SIGTERM) after the quick cleanups given, and
 *     one more while those run exits without waiting for them (see handleSignals).
 */
import { constants } from 'node:os';
import { type Config, loadConfig } from '../src/config.js';
import { ConfigError, SwitchyardError } from '../src/errors.js';
import { type Logger, maskCredentials } from '../src/log.js';

/** Exit code of a configuration error. */
export const CONFIG_EXIT_CODE = 2;

/** Prints `<program>: configuration error` and the message, and exits 2. */
export function exitWithConfigError(program: string, e: ConfigError): never {
  process.stderr.write(`${program}: configuration error\n  ${e.message}\n`);
  process.exit(CONFIG_EXIT_CODE);
}

/** The loaded configuration; on a ConfigError prints `<program>: configuration error` and exits 2. */
export function loadConfigOrExit(program: string): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) exitWithConfigError(program, e);
    throw e;
  }
}

/**
 * A listen error of start-up as a ConfigError naming the variable to change (`PORT`, `LOCAL_ROUTER_PORT`
 * or `HOST`), or undefined for any other error.
 */
export function listenProblem(e: unknown, env: Config['env']): ConfigError | undefined {
  if (!(e instanceof Error)) return undefined;
  // The local router wraps its listen error (src/platform/local/router.ts); the HTTP server's is raw.
  const router = e instanceof SwitchyardError && /^traffic router cannot listen/.test(e.message);
  const cause = (router ? (e as { cause?: unknown }).cause : e) as NodeJS.ErrnoException | undefined;
  if (cause === undefined || (!router && cause.syscall !== 'listen')) return undefined;
  const key = router ? 'LOCAL_ROUTER_PORT' : 'PORT';
  const port = router ? env.LOCAL_ROUTER_PORT : env.PORT;
  const where = `${env.HOST}:${port}`;
  switch (cause.code) {
    case 'EADDRINUSE':
      return new ConfigError(
        `${key}: got ${port}, but ${where} is already in use by another process; expected a free port (or stop that process)`,
        { key },
      );
    case 'EACCES':
      return new ConfigError(
        `${key}: got ${port}, but this user may not listen on ${where} (ports below 1024 need privileges); expected a port from 1024`,
        { key },
      );
    case 'EADDRNOTAVAIL':
      return new ConfigError(
        `HOST: got "${env.HOST}", expected an address of this machine (cannot listen on ${where})`,
        { key: 'HOST' },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError(`HOST: got "${env.HOST}", expected a host name that resolves`, { key: 'HOST' });
    default:
      return undefined;
  }
}

/** What a log line may show of an error: never its other fields, which may hold a URL or a secret. */
export interface SafeError {
  readonly type: string;
  readonly message: string;
  readonly code?: string;
  readonly stack?: string;
  readonly cause?: SafeError;
}

/** `e` reduced to a SafeError (for `logger.fatal({ err: safeError(e) }, …)`). */
export function safeError(e: unknown, depth = 0): SafeError {
  if (!(e instanceof Error)) return { type: typeof e, message: maskCredentials(String(e)) };
  const code = (e as { code?: unknown }).code;
  const cause = (e as { cause?: unknown }).cause;
  return {
    type: e.name,
    message: maskCredentials(e.message),
    ...(typeof code === 'string' ? { code } : {}),
    ...(e.stack === undefined ? {} : { stack: maskCredentials(e.stack) }),
    ...(cause !== undefined && depth < 3 ? { cause: safeError(cause, depth + 1) } : {}),
  };
}

/** How `handleSignals` shuts a command down. */
export interface SignalOptions {
  readonly logger: Logger;
  /** Logged at the first signal (default `shutting down`). */
  readonly message?: string;
  /** The graceful shutdown: resolves once everything stopped. */
  readonly graceful: (signal: NodeJS.Signals) => Promise<void>;
  /**
   * The quick cleanups of a forced exit (a second signal, or the graceful shutdown over `timeoutMs`):
   * what must not be left behind, e.g. the private redis-server (stopped with SIGTERM so that Redis
   * writes its AOF).
   */
  readonly forced?: () => Promise<void>;
  /** How long the graceful shutdown may take before the exit is forced (default 40 s). */
  readonly timeoutMs?: number;
  /**
   * A repeat of a signal acted on (the first, the second that forces the exit) within this long after
   * it is taken as the same delivery, once (default NPM_REPEAT_WINDOW_MS when npm runs this process,
   * else 0: see `npmForwardsSignals`).
   */
  readonly repeatWindowMs?: number;
}

/** How soon after the first signal npm's forwarded copy of it is taken as the same one (see below). */
export const NPM_REPEAT_WINDOW_MS = 1_000;

/**
 * Whether npm runs this process (`npm start`, `npm run worker`: npm sets `npm_lifecycle_event` for
 * the script it runs). Then one Ctrl-C arrives twice, milliseconds apart: the terminal sends SIGINT to
 * its whole foreground process group, npm included, and npm forwards the signals it gets to its child
 * (so does a process manager's SIGTERM to the group, systemd's default). Without this, a single Ctrl-C
 * under `npm start` was taken for two and forced the exit, never letting the active switch finish.
 */
export function npmForwardsSignals(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.npm_lifecycle_event !== undefined && env.npm_lifecycle_event !== '';
}

/** Whether a shutdown began, and how. */
export interface SignalState {
  /** The first signal received, once one was. */
  readonly signal: NodeJS.Signals | undefined;
}

/**
 * Installs the SIGINT/SIGTERM handlers of a command (before its start-up, so that a signal during
 * start-up is handled too): the first signal runs `graceful` and exits 0 (1 if it failed); a second
 * signal (not the first one's repeat within `repeatWindowMs`, once: npm's forwarded copy of it) logs
 * `forced`, runs `forced` and exits 128 + the signal's number (130 for Ctrl-C); a signal
 * while `forced` runs exits at once with its own code. A graceful shutdown longer than `timeoutMs` is
 * forced too (exit 1). Once the exit is forced, the graceful shutdown ending no longer decides it.
 */
export function handleSignals(opts: SignalOptions): SignalState {
  const { logger } = opts;
  const state: { signal: NodeJS.Signals | undefined } = { signal: undefined };
  let forcing = false;
  let deadline: NodeJS.Timeout | undefined;
  const repeatWindowMs = opts.repeatWindowMs ?? (npmForwardsSignals() ? NPM_REPEAT_WINDOW_MS : 0);
  // The last signal acted on (the first, then the one forcing the exit): a repeat of it within the
  // window is npm's copy of the same keypress, taken as that one, once per signal acted on.
  let acted: { signal: NodeJS.Signals; at: number; repeatTaken: boolean } | undefined;
  const actOn = (signal: NodeJS.Signals) => {
    acted = { signal, at: performance.now(), repeatTaken: false };
  };
  const exitCode = (signal: NodeJS.Signals) => 128 + (constants.signals[signal] ?? 0);
  const force = async (code: number) => {
    forcing = true;
    // The exit is forced already: the deadline must not say "took longer" and run the cleanups twice.
    clearTimeout(deadline);
    await (opts.forced?.() ?? Promise.resolve()).catch((e: unknown) =>
      logger.error({ err: safeError(e) }, 'forced shutdown: a cleanup failed'),
    );
    process.exit(code);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (
      acted !== undefined &&
      !acted.repeatTaken &&
      signal === acted.signal &&
      performance.now() - acted.at < repeatWindowMs
    ) {
      // npm's forwarded copy of the one the terminal sent (see npmForwardsSignals).
      acted.repeatTaken = true;
      logger.info(
        { signal },
        `${signal} again within ${repeatWindowMs} ms of the ${forcing ? 'second' : 'first'}: taken as the same one (npm passes on the signal it got too)${forcing ? '' : '; send it again to force the exit'}`,
      );
      return;
    }
    if (forcing) {
      // Said, because what the cleanups were to stop (the private redis-server) may be left running.
      logger.warn({ signal }, 'forced shutdown: another signal; exiting without waiting for the cleanups');
      process.exit(exitCode(signal));
    }
    if (state.signal !== undefined) {
      actOn(signal);
      logger.warn(
        { signal },
        'forced shutdown: second signal; exiting without waiting for the active switch',
      );
      void force(exitCode(signal));
      return;
    }
    state.signal = signal;
    actOn(signal);
    logger.info({ signal }, opts.message ?? 'shutting down');
    const timeoutMs = opts.timeoutMs ?? 40_000;
    deadline = setTimeout(() => {
      logger.error(`shutdown took longer than ${Math.round(timeoutMs / 1000)}s; forcing the exit`);
      void force(1);
    }, timeoutMs);
    deadline.unref();
    opts.graceful(signal).then(
      () => {
        if (forcing) return;
        logger.info('stopped');
        process.exit(0);
      },
      (e: unknown) => {
        if (forcing) return;
        logger.error({ err: safeError(e) }, 'shutdown failed');
        void force(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return state;
}
