/**
 * Switchyard against a Redis that accepts TLS connections only (`rediss://`), as managed Redis usually
 * does, with a certificate signed by a private CA (test/fixtures/tls). Node reads NODE_EXTRA_CA_CERTS
 * only at start-up, so each case runs in a process of its own:
 *   - trusting the CA, Switchyard's own code connects, passes the start-up checks and runs a switch;
 *   - not trusting it, `npm start` (handlers/main.ts) ends with a log line naming REDIS_URL that says
 *     the certificate is not trusted and how to trust it: no stack trace dumped, no password. Node
 *     words it in two ways, both covered: a server sending its own certificate only ("unable to verify
 *     the first certificate"), and one sending the CA after it ("self-signed certificate in chain");
 *   - `redis://` to the TLS port ends the same way, saying to use rediss://, instead of waiting;
 *   - a Redis Cluster of TLS-only nodes (`rediss+cluster://`, the cluster bus on TLS too) works as the
 *     single Redis does, trusting the CA.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedIds } from '../jobs/fixtures/seed.js';
import { killStarted, type Run, run, tempDir } from '../start/children/procs.js';
import { uniqueName } from '../support/redis.js';
import {
  startRedisCluster,
  startRedisNode,
  type TestRedisNode,
  type TestTlsFiles,
} from '../support/redis-cluster.js';

const TLS = new URL('../fixtures/tls/', import.meta.url).pathname;
const CA = `${TLS}ca.pem`;
/** The server's certificate and key, sending the CA after its certificate (a cluster needs `ca`). */
const FILES: TestTlsFiles = { cert: `${TLS}server.pem`, key: `${TLS}server-key.pem`, ca: CA };

/** TLS-only Redis nodes: one sending its certificate alone, one sending the CA after it. */
const nodes: { leaf?: TestRedisNode; chain?: TestRedisNode } = {};
beforeAll(async () => {
  [nodes.leaf, nodes.chain] = await Promise.all([
    startRedisNode({ tls: { cert: FILES.cert, key: FILES.key } }),
    startRedisNode({ tls: FILES }),
  ]);
});
afterAll(async () => {
  killStarted();
  await Promise.all([nodes.leaf?.stop(), nodes.chain?.stop()]);
});

function node(kind: 'leaf' | 'chain'): TestRedisNode {
  const n = nodes[kind];
  if (n === undefined) throw new Error(`no ${kind} node`);
  return n;
}

/** `scheme://:<password>@127.0.0.1:<port>` of a TLS node. */
function url(scheme: 'rediss' | 'redis', n: TestRedisNode): string {
  return `${scheme}://:${n.password}@127.0.0.1:${n.port}`;
}

/** tls-child.ts on `redisUrl`, trusting the test CA, run to its end: what it printed last. */
async function trustingChild(redisUrl: string): Promise<unknown> {
  const r = run(['test/redis/tls-child.ts', uniqueName('tls')], {
    REDIS_URL: redisUrl,
    NODE_EXTRA_CA_CERTS: CA,
  });
  const code = await r.exited;
  expect(code, r.out()).toBe(0);
  return JSON.parse(r.out().trim().split('\n').at(-1) ?? '') as unknown;
}

/** `npm start` (handlers/main.ts) on `redisUrl`, run to its end: its exit code and log lines. */
async function npmStart(redisUrl: string): Promise<{ code: number | null; out: string; lines: unknown[] }> {
  const r: Run = run(['handlers/main.ts'], {
    REDIS_URL: redisUrl,
    PORT: '0',
    LOCAL_ROUTER_PORT: '0',
    SWITCHYARD_DATA_DIR: tempDir(),
    LOG_LEVEL: 'info',
  });
  const code = await r.exited;
  const out = r.out();
  // Every line a log line (JSON): nothing else, such as an uncaught error's stack trace, is printed.
  const lines = out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
  return { code, out, lines };
}

/** The message of the fatal log line. */
function fatal(lines: readonly unknown[]): string {
  const line = lines.find((l) => (l as { levelName?: unknown }).levelName === 'fatal') as
    | { msg: string }
    | undefined;
  if (line === undefined) throw new Error(`no fatal log line in ${JSON.stringify(lines)}`);
  return line.msg;
}

describe('a TLS-only Redis (rediss://)', () => {
  it('is used by a process trusting its CA: start-up checks and a switch round trip', async () => {
    const report = await trustingChild(url('rediss', node('leaf')));
    // CONFIG GET answered over TLS: the one warning is about the node's settings (no AOF), not
    // "could not read the Redis configuration".
    expect(report).toEqual({ warnings: ['aof_off'], outcome: 'succeeded', live: seedIds(0).previous });
  });

  /** The `npm start` cases at once (the redis:// one waits out start-up's 10 s for Redis). */
  const NPM_START = { concurrent: true, timeout: 60_000 } as const;
  const UNTRUSTED = [
    { kind: 'leaf', words: 'unable to verify the first certificate' },
    { kind: 'chain', words: 'self-signed certificate in certificate chain' },
  ] as const;

  it.for(UNTRUSTED)(
    'ends npm start when the CA is not trusted ($kind), saying so and how to trust it, without the password',
    NPM_START,
    async ({ kind, words }) => {
      const redis = node(kind);
      const { code, out, lines } = await npmStart(url('rediss', redis));
      expect(code, out).toBe(1);
      const message = fatal(lines);
      expect(message).toMatch(
        /^switchyard could not start: Redis at rediss:\/\/\*\*\*@127\.0\.0\.1:\d+ \(REDIS_URL\)/,
      );
      // At once, not after start-up's wait for Redis: no reconnection makes this process trust it.
      expect(message).toContain(
        `(REDIS_URL) cannot be used: the TLS certificate of Redis is not trusted (${words})`,
      );
      expect(message).toContain('NODE_EXTRA_CA_CERTS=/path/to/ca.pem');
      expect(out).not.toContain(redis.password);
    },
  );

  it(
    'ends npm run worker when the CA is not trusted, saying so, instead of "reconnecting" for good',
    NPM_START,
    async () => {
      const redis = node('leaf');
      const r: Run = run(['handlers/worker.ts'], { REDIS_URL: url('rediss', redis), LOG_LEVEL: 'info' });
      const code = await r.exited;
      expect(code, r.out()).toBe(1);
      const lines = r
        .out()
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as unknown);
      const message = fatal(lines);
      expect(message).toMatch(
        /^worker could not start: Redis at rediss:\/\/\*\*\*@127\.0\.0\.1:\d+ \(REDIS_URL\) cannot be used: /,
      );
      expect(message).toContain(
        'the TLS certificate of Redis is not trusted (unable to verify the first certificate)',
      );
      expect(message).toContain('NODE_EXTRA_CA_CERTS=/path/to/ca.pem');
      expect(r.out()).not.toContain(redis.password);
    },
  );

  it(
    'ends npm start on redis:// to the TLS port, saying to use rediss://, without the password',
    NPM_START,
    async () => {
      const redis = node('leaf');
      const { code, out, lines } = await npmStart(url('redis', redis));
      expect(code, out).toBe(1);
      const message = fatal(lines);
      expect(message).toMatch(
        /^switchyard could not start: Redis at redis:\/\/\*\*\*@127\.0\.0\.1:\d+ \(REDIS_URL\)/,
      );
      expect(message).toContain('if it accepts TLS connections only, use rediss://');
      expect(out).not.toContain(redis.password);
    },
  );
});

describe('a TLS-only Redis Cluster (rediss+cluster://)', () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>> | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster({ tls: FILES });
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const clusterUrl = () => {
    if (cluster === undefined) throw new Error('no cluster');
    return cluster.url;
  };

  it('is used by a process trusting its CA: start-up checks and a switch round trip', async () => {
    expect(clusterUrl()).toMatch(/^rediss\+cluster:\/\//);
    // Every master's CONFIG answered over TLS: one warning about their settings (no AOF).
    expect(await trustingChild(clusterUrl())).toEqual({
      warnings: ['aof_off'],
      outcome: 'succeeded',
      live: seedIds(0).previous,
    });
  });

  it('ends npm start when the CA is not trusted, saying so from a seed node (the cluster client says only "Connection is closed.")', async () => {
    const { code, out, lines } = await npmStart(clusterUrl());
    expect(code, out).toBe(1);
    const message = fatal(lines);
    expect(message).toMatch(
      /^switchyard could not start: Redis at rediss\+cluster:\/\/\*\*\*@127\.0\.0\.1:\d+/,
    );
    expect(message).toContain(
      '(REDIS_URL) cannot be used: its seed node: the TLS certificate of Redis is not trusted (self-signed certificate in certificate chain)',
    );
    expect(message).toContain('NODE_EXTRA_CA_CERTS=/path/to/ca.pem');
  }, 60_000);
});
