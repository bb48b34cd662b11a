/**
 * The real Prometheus Alertmanager (Debian package prometheus-alertmanager, 0.25) posting webhook
 * version 4 to Switchyard's real handler and AlertService (real Redis), on 127.0.0.1 only.
 *
 * Alertmanager is configured as docs/alerts.md says ("Prometheus Alertmanager (webhook version 4)"):
 * send_resolved, max_alerts, and http_config.authorization Bearer read from a credentials_file. Alerts are pushed
 * into it through its own API (POST /api/v2/alerts); a past endsAt resolves an alert, as Prometheus
 * does. It listens on 127.0.0.1:0 (the port it picked is read from its log), with clustering off and
 * its storage in a temporary directory; each test's process is killed and the directory removed after
 * the test, whatever happened.
 *
 * No sleeps for correctness: each step waits for the Alertmanager delivery it expects to reach the
 * handler (bounded, with a message saying what did arrive).
 *
 * The binary is required, not optional: without it the tests fail saying how to install it (CI
 * installs it: .ci/run and package.json's pretest).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { registerAlertWebhooks } from '../../handlers/webhooks/alerts.js';
import type { AlertResult, NormalizedAlert } from '../../src/alerts/types.js';
import { HttpServer } from '../../src/http.js';
import { createHarness, type Harness, MINUTE } from './helpers.js';

const INSTALL = 'apt-get install -y prometheus-alertmanager';

/** The Alertmanager binary (Debian names it prometheus-alertmanager), or '' when there is none. */
const BIN = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus-alertmanager || command -v alertmanager'])
      .toString()
      .trim();
  } catch {
    return '';
  }
})();

const SECRET = 'am-e2e-secret-0123456789';
/** How long a step waits for Alertmanager's delivery (group_interval is 1 s). */
const DELIVERY_TIMEOUT_MS = 15_000;

interface Delivery {
  readonly alerts: readonly NormalizedAlert[];
  readonly results: readonly AlertResult[];
}

interface Rig {
  readonly h: Harness;
  readonly amUrl: string;
  /** Resolves with the first delivery (already arrived and not yet taken, or later) that `match`es. */
  delivery(what: string, match: (d: Delivery) => boolean): Promise<Delivery>;
}

/** What each test started, undone after it whatever happened. */
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  const errors: unknown[] = [];
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()?.();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw errors[0];
});

/** Stops `child` (SIGTERM, then SIGKILL after 5 s) and resolves once it has exited. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts Alertmanager and resolves with its address once it listens (read from its log). */
function startAlertmanager(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    BIN,
    [
      `--config.file=${join(dir, 'am.yml')}`,
      `--storage.path=${join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:0',
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Never outlive the test process, even if it ends before afterEach runs.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  cleanups.push(async () => {
    await stop(child);
    process.off('exit', killOnExit);
  });
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer) => {
      log += chunk.toString('utf8');
      const m = /msg="Listening on" address=(127\.0\.0\.1:\d+)/.exec(log);
      if (m?.[1] === undefined) return;
      child.stderr?.off('data', onData);
      child.stderr?.resume(); // keep draining its log
      resolve({ child, url: `http://${m[1]}` });
    };
    child.stderr?.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`Alertmanager exited (${code ?? signal}) before listening:\n${log.slice(-2_000)}`)),
    );
  });
}

async function start(groupBy: readonly string[]): Promise<Rig> {
  if (BIN === '') {
    throw new Error(`prometheus-alertmanager is not installed; these tests need the real binary: ${INSTALL}`);
  }
  const h = await createHarness({
    env: { ALERT_WEBHOOK_SECRET: SECRET },
    file: {
      environments: {
        production: { channels: { slack: 'C0ALERTS' } },
        preview: { channels: { slack: 'C0PREVIEW' } },
      },
    },
  });
  cleanups.push(() => h.close());

  const arrived: Delivery[] = [];
  const waiters = new Set<() => void>();
  const http = new HttpServer();
  registerAlertWebhooks(http, {
    intake: {
      async handle(alerts) {
        const results = await h.service.handle(alerts);
        // Chat edits run in the background; a step starts once they are done.
        await h.service.idle();
        arrived.push({ alerts, results });
        for (const w of [...waiters]) w();
        return results;
      },
    },
    config: h.config,
    metrics: h.metrics,
    clock: h.clock,
  });
  const port = await http.listen(0, '127.0.0.1');
  cleanups.push(() => http.close());

  const dir = mkdtempSync(join(tmpdir(), 'switchyard-am-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  writeFileSync(
    join(dir, 'am.yml'),
    [
      'route:',
      '  receiver: switchyard',
      `  group_by: [${groupBy.map((l) => `'${l}'`).join(', ')}]`,
      '  group_wait: 0s',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: switchyard',
      '    webhook_configs:',
      `      - url: http://127.0.0.1:${port}/webhooks/alerts/alertmanager`,
      '        send_resolved: true',
      '        max_alerts: 100',
      '        http_config:',
      '          authorization:',
      '            type: Bearer',
      `            credentials_file: ${join(dir, 'secret')}`,
      '',
    ].join('\n'),
  );
  const am = await startAlertmanager(dir);

  const describeAll = () =>
    arrived
      .map((d) => d.alerts.map((a, i) => `${a.labels.env}:${a.status}→${d.results[i]?.outcome}`).join(' '))
      .join(' | ') || 'none';
  return {
    h,
    amUrl: am.url,
    delivery(what, match) {
      return new Promise((resolve, reject) => {
        const look = () => {
          const i = arrived.findIndex(match);
          if (i < 0) return false;
          const [d] = arrived.splice(0, i + 1).slice(-1);
          if (d === undefined) return false;
          waiters.delete(look);
          clearTimeout(timer);
          resolve(d);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(look);
          reject(
            new Error(
              `no Alertmanager delivery with ${what} within ${DELIVERY_TIMEOUT_MS} ms; got: ${describeAll()}`,
            ),
          );
        }, DELIVERY_TIMEOUT_MS);
        if (!look()) waiters.add(look);
      });
    },
  };
}

/** Pushes alerts into Alertmanager as Prometheus does (a past endsAt resolves one). */
async function push(r: Rig, alerts: unknown[]): Promise<void> {
  const res = await fetch(`${r.amUrl}/api/v2/alerts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(alerts),
  });
  expect(res.status, await res.text()).toBe(200);
}

const iso = (ms: number) => new Date(ms).toISOString();
/** An endsAt in the past: the alert is resolved (Alertmanager compares it with the real time). */
const ended = () => iso(Date.now() - 1_000);

/** What a delivery said, per member: `env:status → outcome`. */
function summary(d: Delivery): string[] {
  return d.alerts.map((a, i) => `${a.labels.env}:${a.status} → ${d.results[i]?.outcome}`);
}

function highErrorRate(h: Harness, env: string, instance = 'api-1') {
  return {
    labels: { alertname: 'HighErrorRate', env, instance, severity: 'critical' },
    annotations: { summary: '5xx ratio above 5%' },
    // 33 minutes before Switchyard's clock: 7 minutes after the demo's production went live.
    startsAt: iso(h.clock.now() - 33 * MINUTE),
    generatorURL: 'http://prometheus.example.org/graph',
  };
}

const has = (d: Delivery, env: string, status: string) =>
  d.alerts.some((a) => a.labels.env === env && a.status === status);

describe('real Alertmanager → POST /webhooks/alerts/alertmanager', () => {
  it('a firing alert is suggested and its resolution resolves it (Bearer from credentials_file)', async () => {
    const r = await start(['alertname', 'env']);
    const alert = highErrorRate(r.h, 'production');
    await push(r, [alert]);
    const firing = await r.delivery('production firing', (d) => has(d, 'production', 'firing'));
    expect(summary(firing)).toEqual(['production:firing → suggested']);
    expect(firing.alerts[0]?.startedAt).toBe(Date.parse(alert.startsAt));

    await push(r, [{ ...alert, endsAt: ended() }]);
    const resolved = await r.delivery('production resolved', (d) => has(d, 'production', 'resolved'));
    expect(summary(resolved)).toEqual(['production:resolved → resolved']);
  });

  it('a group spanning environments (group_by [alertname]): production recovering while preview fires resolves production only', async () => {
    const r = await start(['alertname']);
    const prod = highErrorRate(r.h, 'production');
    const preview = highErrorRate(r.h, 'preview');
    await push(r, [prod, preview]);
    const firing = await r.delivery(
      'both firing',
      (d) => has(d, 'production', 'firing') && has(d, 'preview', 'firing'),
    );
    expect(firing.results.find((x) => x.environment === 'production')?.outcome).toBe('suggested');

    // Alertmanager sends the group (status "firing": preview still fires) with production resolved.
    await push(r, [{ ...prod, endsAt: ended() }]);
    const after = await r.delivery('production resolved', (d) => has(d, 'production', 'resolved'));
    expect(after.results.find((x) => x.environment === 'production')?.outcome).toBe('resolved');
    const record = (environment: string) =>
      r.h.dedupe.get({
        environment,
        source: 'alertmanager',
        fingerprint: after.alerts[0]?.fingerprint ?? '',
      });
    expect((await record('production'))?.resolved).toBe(true);
    // Preview's incident (same group key, its own environment) still fires.
    expect((await record('preview'))?.resolved).toBe(false);
  });

  it('…and production firing again later (a new bad deploy) is a new occurrence, not deduplicated', async () => {
    const r = await start(['alertname']);
    const prod = highErrorRate(r.h, 'production');
    const preview = highErrorRate(r.h, 'preview');
    await push(r, [prod, preview]);
    await r.delivery('both firing', (d) => has(d, 'production', 'firing') && has(d, 'preview', 'firing'));
    await push(r, [{ ...prod, endsAt: ended() }]);
    await r.delivery('production resolved', (d) => has(d, 'production', 'resolved'));

    // Production fires again (same rule, so the same group), preview still firing. (Alertmanager may
    // merge it with the resolved alert of the same labels, keeping its start; the incident is what
    // matters.)
    await push(r, [{ ...prod, startsAt: iso(r.h.clock.now() - 2 * MINUTE) }]);
    const d = await r.delivery('production firing again', (x) => has(x, 'production', 'firing'));
    const prodResult = d.results.find((x) => x.environment === 'production' && x.status === 'firing');
    // Correlated afresh (not deduplicated, nor failed or unmapped): the same rollback's suggestion is
    // still open in production's channel, so the new occurrence is listed on it.
    expect(prodResult?.outcome).toBe('grouped');
    expect(r.h.sink.suggestions.filter((x) => x.environment === 'production')).toHaveLength(1);
  });

  it('a member recovering while another member of its group fires in the same environment leaves the incident open', async () => {
    const r = await start(['alertname', 'env']);
    const one = highErrorRate(r.h, 'production', 'api-1');
    const two = highErrorRate(r.h, 'production', 'api-2');
    await push(r, [one, two]);
    const firing = await r.delivery('two production members firing', (d) => d.alerts.length === 2);
    // One suggestion for the group: made in this delivery, or in an earlier one that Alertmanager
    // flushed with the first member only (group_wait 0s, under load); every other member deduplicated.
    expect(firing.results.filter((x) => x.outcome !== 'suggested' && x.outcome !== 'deduplicated')).toEqual(
      [],
    );
    expect(r.h.sink.suggestions).toHaveLength(1);

    await push(r, [{ ...one, endsAt: ended() }]);
    const after = await r.delivery('a production member resolved', (d) => has(d, 'production', 'resolved'));
    expect(summary(after)).toEqual(['production:firing → deduplicated', 'production:resolved → ignored']);
    const record = await r.h.dedupe.get({
      environment: 'production',
      source: 'alertmanager',
      fingerprint: after.alerts[0]?.fingerprint ?? '',
    });
    expect(record?.resolved).toBe(false);
  });
});
