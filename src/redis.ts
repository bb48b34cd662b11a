/**
 * Redis connections from a URL (`redis://`, `rediss://`, `unix:///path`, or a bare socket path: one
 * Redis; `redis+cluster://` or `rediss+cluster://` with seed nodes: a Redis Cluster, see
 * src/redis-url.ts), of two kinds, each with equivalent options on a cluster:
 *   - `createRedis`: patient. Commands sent while Redis is unreachable wait for the reconnection. Every
 *     BullMQ worker connection must be of this kind (`maxRetriesPerRequest: null`), and so is anything
 *     that must not lose a write to a blip: a running switch's lock, progress and audit, notices,
 *     platform pollers.
 *   - `createRequestRedis`: fails fast. For what answers a person or a sender: commands, clicks,
 *     webhooks, `/readyz`. While Redis is unreachable a command fails at once (never queued for later,
 *     never re-sent after a reconnection, so a request refused for it changes nothing later), and one
 *     sent just before an outage fails within `commandTimeout`. `asSwitchyardError` recognises these
 *     failures (src/errors.ts), so callers can say "Redis is unreachable" instead of "internal error".
 *
 * Modules take a `RedisClient` (either kind of ioredis client) and need not know which it is, except
 * where a cluster differs: commands without a key (SCAN, CONFIG) go to every master (`masters`,
 * `scanKeys`), and keys of different slots never share one command (`deleteKeys`).
 */
import {
  Cluster,
  type ClusterNode,
  type ClusterOptions,
  type Command,
  Redis,
  type RedisOptions,
} from 'ioredis';
import { systemClock, within } from './clock.js';
import { redisUnavailable, SwitchyardError } from './errors.js';
import type { Logger } from './log.js';
import {
  type ClusterTarget,
  isClusterUrl,
  parseClusterUrl,
  parseRedisUrl,
  redactClusterUrl,
} from './redis-url.js';

/** A connection to one Redis or to a Redis Cluster: what every module holding Redis state takes. */
export type RedisClient = Redis | Cluster;

/** Whether `client` is a Redis Cluster connection. */
export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * ioredis options of one Redis (`redis://`, `rediss://`, `unix:///path`, a bare socket path). Throws
 * RedisUrlError (src/redis-url.ts) for a URL it cannot use, never echoing the URL or its credentials.
 */
export function redisOptions(url: string): RedisOptions {
  const base: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false };
  const target = parseRedisUrl(url);
  if ('path' in target) return { ...base, path: target.path };
  return {
    ...base,
    host: target.host,
    port: target.port,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.db === undefined ? {} : { db: target.db }),
    ...(target.tls ? { tls: {} } : {}),
  };
}

/**
 * Cluster options of the patient client. ioredis re-sends a command whose node connection closed (a
 * master restarting, the seconds before a replica takes over) or that met CLUSTERDOWN or TRYAGAIN, but
 * at most `maxRedirections` times (16 by default, `retryDelayOnFailover` 100 ms apart: about a second)
 * and then rejects it ("Too many Cluster redirections"). A patient client waits as long as a patient
 * single Redis does (`maxRetriesPerRequest: null`): no such limit. Each retry round refreshes the slots
 * once for every command waiting, so the delays keep a long outage cheap.
 */
const PATIENT_CLUSTER = {
  maxRedirections: Number.POSITIVE_INFINITY,
  retryDelayOnFailover: 200,
  retryDelayOnClusterDown: 200,
  retryDelayOnTryAgain: 100,
} as const satisfies ClusterOptions;

/**
 * Cluster options of the fail-fast client: a command whose node connection closed, or that meets
 * CLUSTERDOWN, fails at once (it may have run on the node that went away, and a request refused for
 * Redis must not run later). Redirections (MOVED, ASK, TRYAGAIN) are still followed: Redis did not run
 * the command.
 */
const REQUEST_CLUSTER = {
  retryDelayOnFailover: 0,
  retryDelayOnClusterDown: 0,
} as const satisfies ClusterOptions;

/**
 * What the fail-fast cluster client refuses a command with while the cluster is not ready: ioredis's
 * own words for that refusal (src/errors.ts recognises them as `redis_unavailable`).
 */
const CLUSTER_NOT_READY = "Cluster isn't ready and enableOfflineQueue options is false";

/**
 * The fail-fast cluster client (`createRequestRedis`). ioredis opens node connections lazily, on the
 * first command for a node, and with the cluster's offline queue off it refuses ("Connection is
 * closed.") every other command for a node whose connection is still opening, every node being up: a
 * burst of requests right after a start, or after a node connection was re-opened, would be refused
 * for nothing. So the cluster's offline queue stays on, and this client keeps the promises of a
 * fail-fast connection itself:
 *   - while the cluster is not ready, a command fails at once (never queued for later);
 *   - a command for a node connection that is still opening waits for it in that connection's queue,
 *     within `commandTimeout` like any command;
 *   - a command whose caller already had its answer (it timed out waiting there, or waiting in the
 *     cluster's queue for a redirection) is dropped, never written: a request refused for Redis
 *     changes nothing later. Each node connection checks this before it writes a command.
 */
class RequestCluster extends Cluster {
  // ES private members: ioredis names its methods after Redis commands (watch, wait, time…).
  /** The promises of commands whose caller had its answer: a reply, an error, a timeout. */
  readonly #answered = new WeakSet<Promise<unknown>>();
  /** The promises of commands whose answer is watched (`#answered`). */
  readonly #watched = new WeakSet<Promise<unknown>>();
  readonly #seeds: ClusterNode[];

  constructor(seeds: ClusterNode[], options: ClusterOptions) {
    // Node connections are only created once the seeds are resolved (asynchronously), so the
    // listener below sees every one of them.
    super(seeds, { ...options, enableOfflineQueue: true });
    this.#seeds = seeds;
    this.on('+node', (node: Redis) => this.#neverLate(node));
  }

  override sendCommand(...args: Parameters<Cluster['sendCommand']>): unknown {
    const [command] = args;
    const { promise } = command;
    // Sent again from the cluster's offline queue, after its caller gave up on it.
    if (this.#answered.has(promise)) return promise;
    // CLUSTER commands go out before the cluster is ready (its ready check), to a node it knows.
    if (this.status !== 'ready' && !(command.name === 'cluster' && this.nodes().length > 0)) {
      command.reject(new Error(CLUSTER_NOT_READY));
      return promise;
    }
    this.#track(command);
    return super.sendCommand(...args);
  }

  /** A client of the same kind (BullMQ duplicates connections). */
  override duplicate(
    overrideStartupNodes: ClusterNode[] = [],
    overrideOptions: ClusterOptions = {},
  ): Cluster {
    const seeds = overrideStartupNodes.length > 0 ? overrideStartupNodes : this.#seeds;
    return new RequestCluster(seeds, { ...this.options, ...overrideOptions });
  }

  /**
   * Marks the command's promise answered when the command settles. Wrapped before ioredis wraps
   * `reject` to follow redirections, so a redirection is not an answer; a retried pipeline gets a new
   * promise, watched again.
   */
  #track(command: Command): void {
    const { promise } = command;
    if (this.#watched.has(promise)) return;
    this.#watched.add(promise);
    const { resolve, reject } = command;
    const answered = this.#answered;
    command.resolve = (value: unknown) => {
      answered.add(promise);
      resolve(value);
    };
    command.reject = (error: Error) => {
      answered.add(promise);
      reject(error);
    };
  }

  /** Makes `node` drop, instead of writing, a command whose caller already had its answer. */
  #neverLate(node: Redis): void {
    const send = node.sendCommand.bind(node);
    node.sendCommand = (command, stream) =>
      this.#answered.has(command.promise) ? command.promise : send(command, stream);
  }
}

/**
 * A Cluster client for `target`, patient or fail-fast (see the module header). `node` holds options of
 * every node connection (`redisOptions`); its `enableOfflineQueue` is ignored: node connections always
 * queue until connected, and the kind decides the cluster's own queue.
 */
function createCluster(target: ClusterTarget, node: RedisOptions, kind: 'patient' | 'request'): Cluster {
  const {
    enableOfflineQueue: _offline,
    host: _host,
    port: _port,
    path: _path,
    retryStrategy: _retry,
    readOnly: _readOnly,
    sentinels: _sentinels,
    ...nodeOptions
  } = node;
  const seeds: ClusterNode[] = target.seeds.map((s) => ({ host: s.host, port: s.port }));
  const options: ClusterOptions = {
    enableReadyCheck: true,
    lazyConnect: false,
    // With TLS, connect to nodes by the names the cluster announces, so certificates match them.
    ...(target.tls
      ? {
          dnsLookup: (address: string, callback: (err: null, address: string) => void) =>
            callback(null, address),
        }
      : {}),
    ...(kind === 'patient' ? PATIENT_CLUSTER : REQUEST_CLUSTER),
    redisOptions: {
      maxRetriesPerRequest: null,
      enableReadyCheck: true,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {}),
      ...nodeOptions,
    },
  };
  const cluster = kind === 'patient' ? new Cluster(seeds, options) : new RequestCluster(seeds, options);
  clusterSeeds.set(cluster, seeds);
  return cluster;
}

/** The seed nodes a cluster client was made with (ioredis keeps its own private). */
const clusterSeeds = new WeakMap<Cluster, readonly ClusterNode[]>();

/** How long `seedError` waits for a seed node's answer. */
const SEED_PROBE_MS = 3_000;

/**
 * Why a cluster's first seed node cannot be used, asked on a connection of its own with the cluster's
 * node options (TLS, credentials): ioredis's cluster client reports a node that TLS refused only as
 * "Connection is closed.", which does not say that its certificate is not trusted. Undefined when the
 * node answers (or the cluster has no seed to ask).
 */
async function seedError(cluster: Cluster): Promise<Error | undefined> {
  const seed = clusterSeeds.get(cluster)?.[0];
  if (seed === undefined || typeof seed !== 'object' || seed.host === undefined) return undefined;
  const probe = new Redis({
    ...(cluster.options.redisOptions ?? {}),
    host: seed.host,
    ...(seed.port === undefined ? {} : { port: seed.port }),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: SEED_PROBE_MS,
  });
  let first: Error | undefined;
  probe.on('error', (e: Error) => {
    first ??= e;
  });
  try {
    await within(
      systemClock,
      SEED_PROBE_MS,
      probe.connect().then(() => probe.ping()),
      undefined,
    );
  } catch (e) {
    first ??= e instanceof Error ? e : new Error(String(e));
  } finally {
    probe.disconnect();
  }
  return first;
}

/** A new patient ioredis client for `url`, safe for BullMQ workers and queues. */
export function createRedis(url: string, extra: RedisOptions = {}): RedisClient {
  if (isClusterUrl(url)) return createCluster(parseClusterUrl(url), extra, 'patient');
  return new Redis({ ...redisOptions(url), ...extra });
}

/** How long a request-path command may wait for Redis's answer. */
export const REQUEST_COMMAND_TIMEOUT_MS = 5_000;

const failFast = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: REQUEST_COMMAND_TIMEOUT_MS,
} as const satisfies RedisOptions;

/**
 * A new fail-fast ioredis client for request paths (see the module header). On a cluster
 * (`RequestCluster`): a command fails at once while the cluster is not ready, or when its node
 * connection closes (a node down, a failover in progress: it may have run there) or it meets
 * CLUSTERDOWN; redirections (MOVED, ASK, TRYAGAIN) are followed, and a node connection still opening is
 * waited for, within `commandTimeout`.
 */
export function createRequestRedis(url: string, extra: RedisOptions = {}): RedisClient {
  if (isClusterUrl(url)) return createCluster(parseClusterUrl(url), { ...failFast, ...extra }, 'request');
  return createRedis(url, { ...failFast, ...extra });
}

/** The options every node connection of `client` gets (a single Redis: its own). */
export function nodeOptions(client: RedisClient): RedisOptions {
  return isCluster(client) ? (client.options.redisOptions ?? {}) : client.options;
}

/**
 * The connections to every master: the client itself on one Redis; each master node of a cluster, once
 * the cluster client knows them (a PING first when it is not ready yet: a patient client waits for the
 * cluster, a fail-fast one rejects).
 */
export async function masters(client: RedisClient): Promise<Redis[]> {
  if (!isCluster(client)) return [client];
  if (client.status !== 'ready') await client.ping();
  return client.nodes('master');
}

/** `host:port` (or the socket path) of one node connection, for messages. */
export function nodeAddress(node: Redis): string {
  return node.options.path ? node.options.path : `${node.options.host}:${node.options.port}`;
}

/**
 * Every key matching `pattern` (SCAN, never KEYS), on one Redis or on every master of a cluster (a
 * keyless command on a cluster client would reach one random node only).
 */
export async function scanKeys(client: RedisClient, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of await masters(client)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/**
 * Deletes `keys`; resolves with how many existed. On a cluster one command per key: keys of different
 * slots cannot share a command there.
 */
export async function deleteKeys(client: RedisClient, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!isCluster(client)) return client.del(...keys);
  const counts = await Promise.all(keys.map((k) => client.del(k)));
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * OpenSSL's codes (Node's `err.code`) for a server certificate that does not lead to a CA this process
 * trusts: one signed by a private CA (as managed Redis often is), or self-signed.
 */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

/** Whether `e` is TLS refusing Redis's certificate: untrusted, or not for the host connected to. */
function certificateRefused(e: Error): boolean {
  const code = (e as { code?: unknown }).code;
  return (
    typeof code === 'string' && (UNTRUSTED_CERTIFICATE.has(code) || code === 'ERR_TLS_CERT_ALTNAME_INVALID')
  );
}

/**
 * One connection error's message, with what to do when the error alone does not say it: Node's words for
 * an untrusted certificate never mention the CA to add, and a Redis that accepts TLS only just resets a
 * plain connection.
 */
function explain(e: Error, tls: boolean): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)) {
    return `the TLS certificate of Redis is not trusted (${e.message}); if a private CA signed it, start Switchyard with NODE_EXTRA_CA_CERTS=/path/to/ca.pem (that CA's certificate)`;
  }
  if (!tls && code === 'ECONNRESET') {
    return `${e.message} (Redis closed the connection without answering; if it accepts TLS connections only, use rediss://)`;
  }
  return e.message;
}

/**
 * An ioredis connection error's message; a cluster client's also says what the node it last tried
 * answered ("Failed to refresh slots cache." alone does not say that the password is wrong, or that the
 * node runs without cluster mode). `tls`: whether the connection uses TLS.
 */
export function describeRedisError(e: Error, tls = false): string {
  const node: unknown = (e as { lastNodeError?: unknown }).lastNodeError;
  return node instanceof Error ? `${e.message} (${explain(node, tls)})` : explain(e, tls);
}

/**
 * Resolves once `client` is connected and ready; rejects after `timeoutMs` naming `what` and the last
 * connection error.
 */
export function redisReady(client: RedisClient, timeoutMs = 10_000, what = 'Redis'): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let last: Error | undefined;
    const tls = nodeOptions(client).tls !== undefined;
    const onError = (e: Error) => {
      // A command refused because the connection is down ("Reached the max retries per request
      // limit") says nothing of why it is: the connection's own error (refused, reset, TLS) does.
      if (last !== undefined && redisUnavailable(e) !== undefined) return;
      last = e;
    };
    // No reconnection can make this process trust a certificate: said at once, not after the wait.
    const refused = certificateRefusal(client, what);
    void refused.promise.then((e) => done(e));
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      refused.stop();
      client.off('ready', onReady);
      client.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(
      () =>
        done(
          new SwitchyardError(
            'redis_unavailable',
            `${what} did not become ready within ${timeoutMs} ms${last ? `: ${describeRedisError(last, tls)}` : ''}`,
            { retry: true, ...(last ? { cause: last } : {}) },
          ),
        ),
      timeoutMs,
    );
    client.on('ready', onReady);
    client.on('error', onError);
  });
}

/**
 * Watches `client`'s connection errors for TLS refusing Redis's certificate (untrusted, or not for the
 * host): no reconnection can fix that (Node reads NODE_EXTRA_CA_CERTS at start-up only), so a process
 * waiting for Redis stops saying so rather than retrying for good. `promise` resolves with the error to
 * stop with (naming `what`); it never rejects, and never resolves once `stop()` was called. A cluster
 * client reports such a node only as "Connection is closed.": its first seed node is asked once, on a
 * connection of its own.
 */
export function certificateRefusal(
  client: RedisClient,
  what: string,
): { readonly promise: Promise<SwitchyardError>; stop(): void } {
  const tls = nodeOptions(client).tls !== undefined;
  let stopped = false;
  let probed = false;
  let found: (e: SwitchyardError) => void = () => undefined;
  const promise = new Promise<SwitchyardError>((resolve) => {
    found = resolve;
  });
  const refuse = (e: Error, where = '') => {
    if (stopped) return;
    stop();
    found(
      new SwitchyardError(
        'redis_unavailable',
        `${what} cannot be used: ${where}${describeRedisError(e, tls)}`,
        {
          retry: false,
          cause: e,
        },
      ),
    );
  };
  const onError = (e: Error) => {
    if (certificateRefused(e)) refuse(e);
    else if (tls && isCluster(client) && e.name === 'ClusterAllFailedError' && !probed) {
      probed = true;
      void seedError(client).then((seedErr) => {
        if (seedErr !== undefined && certificateRefused(seedErr)) refuse(seedErr, 'its seed node: ');
      });
    }
  };
  const stop = () => {
    stopped = true;
    client.off('error', onError);
  };
  if (tls) client.on('error', onError);
  return { promise, stop };
}

/**
 * Whether `e` says a Redis connection could not be made or kept (what ioredis emits on a connection's
 * `error` event, and what BullMQ passes on from its connections), as opposed to an error of a command
 * or of the code using Redis: a socket error (refused, reset, timed out, a name that does not resolve),
 * TLS refusing the server, Redis refusing the credentials (AUTH/HELLO), a failed ready check, a
 * connection closed under a command, or a cluster that cannot be reached.
 */
export function isRedisConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const { code, syscall, command } = e as { code?: unknown; syscall?: unknown; command?: unknown };
  // Node's socket and DNS errors (connect, read, write, getaddrinfo): ECONNREFUSED, ETIMEDOUT, …
  if (typeof syscall === 'string') return true;
  if (typeof code === 'string' && /^ERR_(TLS|SSL)_|CERT|_SIGNED_|^UNABLE_TO_/.test(code)) return true;
  const name =
    typeof command === 'object' && command !== null ? (command as { name?: unknown }).name : undefined;
  if (name === 'auth' || name === 'hello') return true;
  if (/^(WRONGPASS|NOAUTH)\b|^Ready check failed: |\bECONNREFUSED\b/.test(e.message)) return true;
  // ioredis's cluster client: no node answered, or the slots could not be read from any.
  if (e.name === 'ClusterAllFailedError' || /^None of startup nodes is available/.test(e.message))
    return true;
  // BullMQ's and ioredis's "Connection is closed.", and the failures of a fail-fast connection.
  return e.name === 'ConnectionClosedError' || redisUnavailable(e) !== undefined;
}

/**
 * Says once that Redis went away and once that it is back (never at every reconnection attempt), for
 * the connections behind `connection` (its name in the log lines).
 */
export interface RedisOutageLog {
  /**
   * Takes an error of the connection(s): a connection error (`isRedisConnectionError`) is logged at
   * WARN if it is the first since Redis was last reachable, at DEBUG otherwise; returns whether it was
   * one (the caller logs any other error itself).
   */
  error(err: unknown): boolean;
  /** A connection is ready again: logs that Redis is reachable again if it was said to be down. */
  ready(): void;
}

/** A RedisOutageLog for `connection` (see there). */
export function redisOutageLog(logger: Logger, connection: string): RedisOutageLog {
  let down = false;
  return {
    error(err) {
      if (!isRedisConnectionError(err)) return false;
      if (down) logger.debug({ err, connection }, 'Redis is still unreachable');
      else {
        down = true;
        logger.warn({ err, connection }, 'Redis is unreachable; reconnecting');
      }
      return true;
    },
    ready() {
      if (!down) return;
      down = false;
      logger.info({ connection }, 'Redis is reachable again');
    },
  };
}

/** What `watchRedis` does besides listening to the connection's events: the PING watchdog. */
export interface RedisAnswerWatch {
  /**
   * A fail-fast connection to the same Redis (`createRequestRedis`) to PING, one PING outstanding per
   * node at a time; without it, only the connection's events are watched. The caller closes it.
   */
  readonly probe?: RedisClient;
  /** How long after a round of PINGs the next one starts (default `REDIS_WATCH_INTERVAL_MS`). */
  readonly intervalMs?: number;
  /**
   * How long a PING may go unanswered before Redis is said not to answer (default
   * `REQUEST_COMMAND_TIMEOUT_MS`, what a request waits for it).
   */
  readonly timeoutMs?: number;
}

/** A watch started by `watchRedis`. */
export interface RedisWatch {
  /**
   * Why Redis is not answering now, as the watchdog found (e.g. `not answering (no reply to PING
   * within 5 s)`); undefined while it answers, and when its connection is down (its events say that).
   */
  notAnswering(): string | undefined;
  /** Stops the watchdog (the connection's events stay watched: they stop with the connection). */
  stop(): void;
}

/**
 * How long after one round of the watchdog's PINGs the next starts: as long as a request may wait for
 * Redis, so that a Redis that stops answering is said so within about twice that.
 */
export const REDIS_WATCH_INTERVAL_MS = REQUEST_COMMAND_TIMEOUT_MS;

/** `ms` for a log line: whole seconds as `5 s`, anything else as `250 ms`. */
function duration(ms: number): string {
  return ms % 1_000 === 0 ? `${ms / 1_000} s` : `${ms} ms`;
}

/** How one node connection met a PING: a reply, no reply in time, or a connection that is down. */
type PingOutcome = 'answered' | 'silent' | 'down';

/** `work`, or `fallback` once `ms` passed; the timer never keeps the process alive. */
function orAfter<T>(ms: number, work: Promise<T>, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
    void work.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * Logs a connection going down once (not at every reconnection attempt) and its coming back, and keeps
 * ioredis from printing "Unhandled error event" for each attempt. Every error a connection emits is
 * about the connection itself.
 *
 * A Redis that hangs (the process stopped, a network partition) fires no connection event: the TCP
 * connection stays open and nothing answers, so commands on a patient connection wait without a word.
 * With `answers.probe`, a watchdog PINGs Redis every `intervalMs` on that fail-fast connection and says
 * once that Redis is not answering when a PING has no reply within `timeoutMs`, and once that it answers
 * again. On a Redis Cluster it PINGs each master (the probe opens a connection to each), naming the ones
 * that do not answer. A connection down or reconnecting is left to the connection's events (no PING,
 * no second warning); one whose socket opened but whose set-up Redis does not answer (a Redis that hung
 * before this process connected) counts as no reply. One PING per node is outstanding at a time: a
 * PING still unanswered at the next round is waited for, never sent again.
 */
export function watchRedis(
  client: RedisClient,
  logger: Logger,
  name = 'redis',
  answers: RedisAnswerWatch = {},
): RedisWatch {
  // `unreachable`: said by the connection's events; `not answering`: said by the watchdog.
  let state: 'up' | 'unreachable' | 'not answering' = 'up';
  let reason: string | undefined;
  const silent = new Set<string>();
  const back = () => {
    state = 'up';
    reason = undefined;
    silent.clear();
    logger.info({ connection: name }, 'Redis is answering again');
  };
  client.on('error', (err: Error) => {
    if (state === 'unreachable') return;
    state = 'unreachable';
    reason = undefined;
    silent.clear();
    logger.warn({ err, connection: name }, 'Redis is unreachable; reconnecting');
  });
  client.on('ready', () => {
    if (state === 'not answering') back();
    else if (state === 'unreachable') {
      state = 'up';
      logger.info({ connection: name }, 'Redis is reachable again');
    }
  });
  const { probe } = answers;
  if (probe === undefined) return { notAnswering: () => undefined, stop: () => undefined };

  const intervalMs = answers.intervalMs ?? REDIS_WATCH_INTERVAL_MS;
  const timeoutMs = answers.timeoutMs ?? REQUEST_COMMAND_TIMEOUT_MS;
  const pending = new Map<Redis, Promise<PingOutcome>>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  /** The PING outstanding on `node`, or a new one. Never rejects. */
  const ping = (node: Redis): Promise<PingOutcome> => {
    const outstanding = pending.get(node);
    if (outstanding !== undefined) return outstanding;
    const asked: Promise<PingOutcome> =
      node.status === 'connect' && node.options.enableOfflineQueue === false
        ? // A fail-fast connection refuses commands until its set-up is answered: that answer is the PING.
          new Promise((resolve) => {
            const done = (outcome: PingOutcome) => () => {
              node.off('ready', ready);
              node.off('close', closed);
              resolve(outcome);
            };
            const ready = done('answered');
            const closed = done('down');
            node.on('ready', ready);
            node.on('close', closed);
          })
        : node.ping().then(
            () => 'answered',
            // commandTimeout: no reply in time; anything else: the connection is down.
            (e: unknown) => (e instanceof Error && e.message === 'Command timed out' ? 'silent' : 'down'),
          );
    const settled = asked.then((outcome) => {
      pending.delete(node);
      // A late reply ends the silence at once, not at the next round.
      const last = outcome === 'answered' && silent.delete(nodeAddress(node)) && silent.size === 0;
      if (last && state === 'not answering' && !stopped) back();
      return outcome;
    });
    pending.set(node, settled);
    return settled;
  };

  /** The node connections to PING: the probe itself, or each master of a cluster the probe knows. */
  const targets = (): Redis[] => {
    if (!isCluster(probe)) return probe.status === 'ready' || probe.status === 'connect' ? [probe] : [];
    if (probe.status !== 'ready') return [];
    // `wait`: not opened yet (the PING opens it); `connecting`, `reconnecting`: down, left to the events.
    return probe.nodes('master').filter((n) => ['wait', 'connect', 'ready'].includes(n.status));
  };

  const round = async () => {
    const nodes = targets();
    const outcomes = await Promise.all(nodes.map((n) => orAfter(timeoutMs, ping(n), 'silent' as const)));
    if (stopped) return;
    const unanswered = nodes.filter((_, i) => outcomes[i] === 'silent');
    if (state !== 'unreachable') {
      silent.clear();
      for (const n of unanswered) silent.add(nodeAddress(n));
    }
    if (state === 'not answering' && unanswered.length === 0 && outcomes.includes('answered')) back();
    else if (unanswered.length > 0 && state !== 'unreachable') {
      const addresses = [...silent].sort();
      const where = isCluster(probe) ? ` from ${addresses.join(', ')}` : '';
      const setUp = !isCluster(probe) && unanswered[0]?.status === 'connect';
      reason = `not answering (no reply to ${setUp ? 'the connection set-up' : 'PING'} within ${duration(timeoutMs)}${where})`;
      if (state === 'up') {
        state = 'not answering';
        logger.warn(
          { connection: name, timeoutMs, ...(isCluster(probe) ? { nodes: addresses } : {}) },
          `Redis is ${reason}; waiting for it`,
        );
      } else logger.debug({ connection: name }, 'Redis is still not answering');
    }
    timer = setTimeout(() => void round(), intervalMs);
    timer.unref();
  };
  timer = setTimeout(() => void round(), intervalMs);
  timer.unref();
  return {
    notAnswering: () => (state === 'not answering' ? reason : undefined),
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * Whether Redis answers a PING on `client` within `ms`. A status check alone is not enough: a
 * connection whose server just went away may still read `ready` for a moment.
 */
export async function redisAnswers(client: RedisClient, ms = 500): Promise<boolean> {
  if (client.status !== 'ready') return false;
  const answered = client.ping().then(
    (pong) => pong === 'PONG',
    () => false,
  );
  return within(systemClock, ms, answered, false);
}

/** Closes a connection: QUIT when Redis answers, otherwise drops it at once (never waits for Redis). */
export async function closeRedis(client: RedisClient | undefined): Promise<void> {
  if (client === undefined || client.status === 'end') return;
  if (!(await redisAnswers(client))) {
    client.disconnect();
    return;
  }
  await client.quit().catch(() => client.disconnect());
}

/** `url` without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  if (isClusterUrl(url)) return redactClusterUrl(url);
  if (!/^rediss?:\/\//.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured Redis URL';
  }
}
