/**
 * Where Switchyard's Redis is, read from `REDIS_URL` without connecting: one Redis (`redis://`,
 * `rediss://`, `unix:///path`, a bare socket path) or a Redis Cluster (`redis+cluster://` and, with TLS,
 * `rediss+cluster://`, listing seed nodes). Also owns the key namespace rule for a cluster: every key
 * Switchyard or BullMQ touches in one script or transaction must hash to one slot, so on a cluster the
 * namespace carries a hash tag (`{switchyard}`); on one Redis it stays as it always was (`switchyard`),
 * so an upgrade never orphans the keys of an existing installation. No ioredis here: src/config.ts
 * validates with it, src/redis.ts connects with it.
 */

/** The URL schemes of a Redis Cluster: plain and TLS. */
export const CLUSTER_SCHEMES = ['redis+cluster:', 'rediss+cluster:'] as const;

/** The shape of a cluster URL, for messages. */
export const CLUSTER_URL_SHAPE = 'redis+cluster://[user:password@]host:port[,host:port…]';

/** One seed node of a cluster (ioredis discovers the others from it). */
export interface ClusterSeed {
  readonly host: string;
  readonly port: number;
}

/** A Redis Cluster, as `REDIS_URL` describes it. */
export interface ClusterTarget {
  readonly seeds: readonly ClusterSeed[];
  readonly username?: string;
  readonly password?: string;
  /** `rediss+cluster://`: every node connection uses TLS. */
  readonly tls: boolean;
}

/** Whether `url` names a Redis Cluster (`redis+cluster://…` or `rediss+cluster://…`). */
export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//i.test(url);
}

/** The shape of a one-Redis URL, for messages. */
export const REDIS_URL_SHAPE = 'redis://[user:password@]host[:port][/db] (or rediss://…)';

/** One Redis, as `REDIS_URL` describes it: a unix socket, or a host and port. */
export type RedisTarget =
  | { readonly path: string }
  | {
      readonly host: string;
      readonly port: number;
      readonly username?: string;
      readonly password?: string;
      readonly db?: number;
      /** `rediss://`: the connection uses TLS. */
      readonly tls: boolean;
    };

/**
 * A one-Redis URL that cannot be used. The message never contains the URL nor its credentials, and
 * the error carries no copy of the URL (unlike the `input` of the TypeError `new URL` throws).
 */
export class RedisUrlError extends Error {
  override readonly name = 'RedisUrlError';
}

/**
 * Parses a one-Redis URL: `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS),
 * `unix:///path/to.sock` or a bare socket path. The host may be an IPv6 address in brackets (returned
 * without them: ioredis and node:net look `[::1]` up as a name); the port defaults to 6379 and must be
 * 1-65535; credentials are percent-encoded as in any URL; the path, when present, is the database
 * number. Throws RedisUrlError saying what is wrong, never echoing the credentials.
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (url.startsWith('unix://')) {
    const path = url.slice('unix://'.length);
    if (!path.startsWith('/') || path.length < 2)
      throw new RedisUrlError('the socket path is not absolute (unix:///path/to.sock)');
    return { path };
  }
  if (url.startsWith('/')) return { path: url };
  const scheme = /^(rediss?):\/\//.exec(url);
  if (!scheme) throw new RedisUrlError('the scheme is not redis://, rediss:// or unix://');
  const rest = url.slice(scheme[0].length);
  // The authority ends at the first `/`, `?` or `#`; credentials end at its last `@`.
  const authority = rest.split(/[/?#]/, 1)[0] ?? '';
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const hp = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostPort);
  const portText = hp?.[2];
  if (hp === null || (hp[1] ?? '') === '') throw new RedisUrlError('there is no host');
  if (portText !== undefined && portText !== '') {
    const port = Number(portText);
    if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535)
      throw new RedisUrlError('the port is not a number from 1 to 65535');
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisUrlError(
      'it is not a valid URL (reserved characters in the user name or password must be percent-encoded: @ as %40, : as %3A, / as %2F, % as %25)',
    );
  }
  const decode = (text: string, what: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw new RedisUrlError(`the ${what} is not valid percent-encoding (write % as %25)`);
    }
  };
  const username = u.username === '' ? undefined : decode(u.username, 'user name');
  const password = u.password === '' ? undefined : decode(u.password, 'password');
  let db: number | undefined;
  if (u.pathname !== '' && u.pathname !== '/') {
    if (!/^\/\d{1,9}$/.test(u.pathname))
      throw new RedisUrlError('the path is not a database number (/0, /1, …)');
    db = Number(u.pathname.slice(1));
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (host === '') throw new RedisUrlError('there is no host');
  return {
    host,
    port: u.port === '' ? 6379 : Number(u.port),
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(db === undefined ? {} : { db }),
    tls: scheme[1] === 'rediss',
  };
}

/** A cluster URL that cannot be used; the message never contains the URL's credentials. */
export class ClusterUrlError extends Error {
  override readonly name = 'ClusterUrlError';
}

/**
 * A seed host: an IPv6 address in brackets, an IPv4 address or a host name. Underscores are allowed as
 * a `redis://` URL allows them: Docker Compose service and container names (`redis_node_1`) resolve.
 */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)$/;

function decodePart(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ClusterUrlError(`the ${what} is not valid percent-encoding`);
  }
}

function parseSeed(entry: string): ClusterSeed {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(entry);
  const host = m?.[1] ?? '';
  const portText = m?.[2];
  if (!HOST.test(host)) throw new ClusterUrlError(`seed node "${entry}" is not host:port`);
  const port = portText === undefined ? 6379 : Number(portText);
  if (portText !== undefined && (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535))
    throw new ClusterUrlError(`seed node "${entry}" has no valid port (1-65535)`);
  // ioredis wants an IPv6 address without its brackets.
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

/**
 * Parses `redis+cluster://[user:password@]host:port[,host:port…]` (or `rediss+cluster://` for TLS).
 * The port defaults to 6379; a path may only be empty, `/` or `/0` (a cluster has database 0 only);
 * credentials are percent-encoded as in any URL and apply to every node. Throws ClusterUrlError saying
 * what is wrong, never echoing the credentials.
 */
export function parseClusterUrl(url: string): ClusterTarget {
  const scheme = /^(rediss?\+cluster):\/\//i.exec(url);
  if (!scheme) throw new ClusterUrlError(`expected ${CLUSTER_URL_SHAPE}`);
  const tls = (scheme[1] ?? '').toLowerCase() === 'rediss+cluster';
  let rest = url.slice(scheme[0].length);
  // Credentials end at the last `@` (a password's own `@` must be written %40, as in any URL).
  const at = rest.lastIndexOf('@');
  let username: string | undefined;
  let password: string | undefined;
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = decodePart(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name');
    const pass = colon < 0 ? '' : decodePart(userinfo.slice(colon + 1), 'password');
    if (user !== '') username = user;
    if (pass !== '') password = pass;
  }
  if (/[?#]/.test(rest)) throw new ClusterUrlError('expected no query string or fragment');
  const slash = rest.indexOf('/');
  const hosts = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (path !== '' && path !== '/' && path !== '/0')
    throw new ClusterUrlError(`a Redis Cluster has database 0 only (got the path "${path}")`);
  const entries = hosts.split(',').map((e) => e.trim());
  if (entries.length === 0 || entries.every((e) => e === ''))
    throw new ClusterUrlError(`expected at least one seed node: ${CLUSTER_URL_SHAPE}`);
  if (entries.some((e) => e === '')) throw new ClusterUrlError('expected no empty seed node between commas');
  return {
    seeds: entries.map(parseSeed),
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    tls,
  };
}

/** `url` with its credentials replaced by `***`, for messages and logs. */
export function redactClusterUrl(url: string): string {
  const at = url.lastIndexOf('@');
  const scheme = /^(rediss?\+cluster:\/\/)/i.exec(url)?.[1];
  if (at < 0 || scheme === undefined) return url;
  return `${scheme}***@${url.slice(at + 1)}`;
}

/**
 * The hash tag of `key` as Redis Cluster reads it: the text between the first `{` and the first `}`
 * after it, when not empty. Undefined when the whole key is hashed.
 */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

/**
 * Switchyard's key namespace (the BullMQ prefix and the prefix of its own keys) for `name`: unchanged on
 * one Redis; on a cluster wrapped in a hash tag (`switchyard` → `{switchyard}`) unless it already
 * carries one, so that every key under it hashes to one slot. Idempotent.
 */
export function keyNamespace(name: string, cluster: boolean): string {
  if (!cluster || hashTagOf(name) !== undefined) return name;
  return `{${name}}`;
}
