/**
 * jobs/worker-main.ts: the flags' defaults and bounds no test held (the lock
 * duration a worker holds a switch by, at most 256 switches at once, port 65535), and a --metrics-host
 * that is not an address of this machine refused as a configuration error naming the flag.
 */
import { describe, expect, it } from 'vitest';
import { parseWorkerArgs, serveWorkerMetrics } from '../../jobs/worker-main.js';
import { ConfigError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';

describe('worker flags', () => {
  it('holds a switch by a 30 s lock unless told otherwise, runs 10 at once by default and at most 256', () => {
    const a = parseWorkerArgs([]);
    expect(a['lock-duration']).toBe(30_000);
    expect(a.concurrency).toBe(10);
    expect(parseWorkerArgs(['--concurrency', '256']).concurrency).toBe(256);
    expect(() => parseWorkerArgs(['--concurrency', '257'])).toThrow(/--concurrency: got "257"/);
    expect(() => parseWorkerArgs(['--concurrency', '0'])).toThrow(/--concurrency: got "0"/);
  });

  it('takes the highest port, 65535, for --metrics-port', () => {
    expect(parseWorkerArgs(['--metrics-port', '65535'])['metrics-port']).toBe(65535);
    expect(() => parseWorkerArgs(['--metrics-port', '65536'])).toThrow(/--metrics-port: .*0 and 65535/);
  });
});

describe('worker metrics server', () => {
  it('a --metrics-host that is no address of this machine is a configuration error naming the flag', async () => {
    const logger = createLogger({ level: 'silent' });
    const err = await serveWorkerMetrics(createMetrics(), 0, '192.0.2.1', logger).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      '--metrics-host: got "192.0.2.1", expected an address of this machine (cannot listen on 192.0.2.1:0)',
    );
  });
});
