import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAlertPayload } from '../../src/alerts/parsers.js';
import {
  compositeSink,
  createAlertService,
  parseChatAlert,
  postedBySlot,
  RENOTIFICATION_REASON,
} from '../../src/alerts/service.js';
import { type AlertSource, type NormalizedAlert, normalizedAlert } from '../../src/alerts/types.js';
import type { ManualClock } from '../../src/clock.js';
import { PermanentChatError } from '../../src/errors.js';
import { uniqueName } from '../support/redis.js';
import {
  alertCount,
  alertServiceOn,
  createHarness,
  DEMO_SENTENCE,
  type Harness,
  MINUTE,
  RecordingSink,
  unkeyAfterAutoDeploy,
  vercelAfterAutoDeploy,
} from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function alert(h: Harness, fields: Partial<NormalizedAlert> = {}): NormalizedAlert {
  return normalizedAlert({
    source: 'generic',
    status: 'firing',
    title: 'Checkout 5xx above 5%',
    fingerprint: 'incident-1',
    startedAt: h.clock.now() - 33 * MINUTE,
    labels: { env: 'production' },
    text: '',
    ...fields,
  });
}

describe('AlertService', () => {
  it('suggests a rollback of the deployment that went live before the alert, with a real plan', async () => {
    h = await createHarness();
    const [result] = await h.service.handle([alert(h)]);
    expect(result).toMatchObject({ environment: 'production', outcome: 'suggested', detail: DEMO_SENTENCE });
    expect(h.sink.suggestions).toHaveLength(1);
    const input = h.sink.suggestions[0];
    expect(input?.kind).toBe('suggestion');
    expect(input?.sentence).toBe(DEMO_SENTENCE);
    expect(input?.plan?.target.id).toBe('dep_3hd7xa');
    expect(input?.plan?.current.id).toBe('dep_4kq9wz');
    expect(input?.destinations).toEqual([
      { surface: 'slack', channel: 'C0ALERTS' },
      { surface: 'discord', channel: '123456789012' },
    ]);
    // The plan lives in the PlanStore with the alert as context and the posted messages attached.
    const record = await h.flow.get(result?.planId ?? '');
    expect(record?.alert).toMatchObject({ source: 'generic', suspectDeploymentId: 'dep_4kq9wz' });
    expect(record?.messages.map((m) => m.messageId).sort()).toEqual(['msg-1', 'msg-2']);
    expect(record?.requestedBy.surface).toBe('system');
    expect(await alertCount(h.metrics, 'suggested')).toBe(1);
  });

  it('storm control: 1,000 concurrent alerts for one incident give exactly one suggestion', async () => {
    h = await createHarness();
    const harness = h;
    const results = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) =>
        harness.service.handle([alert(harness, { title: `Checkout 5xx (#${i})` })]),
      ),
    );
    const outcomes = results.flat().map((r) => r.outcome);
    expect(outcomes.filter((o) => o === 'suggested')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'deduplicated')).toHaveLength(999);
    expect(h.sink.suggestions).toHaveLength(1);
    expect(await alertCount(h.metrics, 'deduplicated')).toBe(999);
  });

  it('another incident pointing at the same rollback joins its suggestion: one message listing both', async () => {
    h = await createHarness();
    const [first] = await h.service.handle([alert(h)]);
    const [second] = await h.service.handle([
      alert(h, { fingerprint: 'incident-2', source: 'grafana', title: 'Checkout p99 above 2s' }),
    ]);
    expect(second).toMatchObject({ outcome: 'grouped', planId: first?.planId });
    expect(second?.detail).toContain('Added to the open suggestion');
    expect(h.sink.suggestions).toHaveLength(1);
    await h.service.idle(); // the edit runs in the background: the webhook is not kept waiting
    // The message already posted is edited to list the new alert, on every surface it went to.
    expect(h.sink.refreshCalls).toHaveLength(1);
    expect(h.sink.refreshCalls[0]?.refs.map((r) => r.messageId).sort()).toEqual(['msg-1', 'msg-2']);
    expect(h.sink.refreshCalls[0]?.alerts.map((a) => a.alert.title)).toEqual([
      'Checkout 5xx above 5%',
      'Checkout p99 above 2s',
    ]);
    expect(await alertCount(h.metrics, 'grouped')).toBe(1);
    // A third alert of the second incident is a plain duplicate.
    const [third] = await h.service.handle([alert(h, { fingerprint: 'incident-2', source: 'grafana' })]);
    expect(third?.outcome).toBe('deduplicated');
    expect(h.sink.refreshCalls).toHaveLength(1);
  });

  it('50 concurrent alerts of different incidents for one rollback post one message that lists them all', async () => {
    h = await createHarness();
    const harness = h;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        harness.service.handle([alert(harness, { fingerprint: `incident-${i}`, title: `Alert ${i}` })]),
      ),
    );
    const outcomes = results.flat().map((r) => r.outcome);
    expect(outcomes.filter((o) => o === 'suggested')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'grouped')).toHaveLength(49);
    expect(h.sink.suggestions).toHaveLength(1);
    await h.service.idle();
    // 49 alerts joined, but the edits were coalesced: far fewer than one per alert.
    expect(h.sink.refreshCalls.length).toBeLessThan(49);
    const record = await h.flow.get(results[0]?.[0]?.planId ?? '');
    expect(record?.alerts).toHaveLength(50);
    expect(record?.suggestions?.map((x) => x.slot).sort()).toEqual([
      'discord:123456789012',
      'slack:C0ALERTS',
    ]);
    // Whatever order the edits ran in, the last one rendered the full list.
    expect(h.sink.refreshCalls.at(-1)?.alerts).toHaveLength(50);
  });

  it('the same incident in a different place (a chat thread) gets its own message; another environment its own plan', async () => {
    h = await createHarness();
    const [first] = await h.service.handle([alert(h)]);
    const [threaded] = await h.service.handle([alert(h, { fingerprint: 'incident-2' })], {
      surface: 'slack',
      channel: 'C0WATCHED',
      messageId: '17.02',
    });
    expect(threaded).toMatchObject({ outcome: 'suggested', planId: first?.planId });
    expect(h.sink.suggestions).toHaveLength(2);
    expect(h.sink.suggestions[1]?.alertId).toBeDefined();
    expect(h.sink.suggestions[1]?.alertId).not.toBe(h.sink.suggestions[0]?.alertId);
  });

  it('alerts without a fingerprint share a per-environment time window', async () => {
    h = await createHarness({ dedupe: { anonymousWindowMs: 600_000 } });
    const a = normalizedAlert({ ...alert(h), fingerprint: undefined });
    const results = await h.service.handle([a, a, { ...a, title: 'other words' }]);
    expect(results.map((r) => r.outcome)).toEqual(['suggested', 'deduplicated', 'deduplicated']);
    const ttl = await h.redis.pttl(h.dedupe.key({ environment: 'production', source: 'generic' }));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
  });

  it('a duplicate extends an open incident; the anonymous window does not slide', async () => {
    h = await createHarness({ dedupe: { incidentTtlMs: 3_600_000, anonymousWindowMs: 600_000 } });
    await h.service.handle([alert(h)]);
    const key = h.dedupe.key({ environment: 'production', source: 'generic', fingerprint: 'incident-1' });
    await h.redis.pexpire(key, 1_000);
    await h.service.handle([alert(h)]);
    expect(await h.redis.pttl(key)).toBeGreaterThan(3_500_000);
    const anon = normalizedAlert({ ...alert(h), fingerprint: undefined });
    await h.service.handle([anon]);
    const windowKey = h.dedupe.key({ environment: 'production', source: 'generic' });
    await h.redis.pexpire(windowKey, 1_000);
    await h.service.handle([anon]);
    expect(await h.redis.pttl(windowKey)).toBeLessThanOrEqual(1_000);
  });

  it('incident records expire so memory stays bounded', async () => {
    h = await createHarness({ dedupe: { incidentTtlMs: 3_600_000, resolvedTtlMs: 120_000 } });
    await h.service.handle([alert(h)]);
    const key = h.dedupe.key({ environment: 'production', source: 'generic', fingerprint: 'incident-1' });
    const ttl = await h.redis.pttl(key);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(await h.redis.pttl(key)).toBeLessThanOrEqual(120_000);
  });

  it('a RESOLVED alert edits its suggestion once', async () => {
    h = await createHarness();
    await h.service.handle([alert(h)]);
    const [resolved] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(resolved?.outcome).toBe('resolved');
    expect(resolved?.planId).toMatch(/^plan_/);
    expect(h.sink.refreshCalls).toHaveLength(1);
    const call = h.sink.refreshCalls[0];
    expect(call?.refs.map((r) => r.messageId).sort()).toEqual(['msg-1', 'msg-2']);
    expect(call?.alerts[0]?.resolvedAt).toBe(h.clock.now());
    const [again] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(again?.outcome).toBe('resolved_unknown');
    expect(h.sink.refreshCalls).toHaveLength(1);
    // Firing again after the resolution is a new occurrence: its suggestion (still open) fires again.
    const [refired] = await h.service.handle([alert(h)]);
    expect(refired?.outcome).toBe('grouped');
    expect(h.sink.suggestions).toHaveLength(1);
    await h.service.idle();
    expect(h.sink.refreshCalls).toHaveLength(2);
    expect(h.sink.refreshCalls[1]?.alerts[0]?.resolvedAt).toBeUndefined();
  });

  it('a RESOLVED after the suggestion was confirmed says its message shows the switch (nothing to edit)', async () => {
    h = await createHarness();
    const [suggested] = await h.service.handle([alert(h)]);
    const planId = suggested?.planId ?? '';
    await h.plans.transition(planId, ['pending'], 'enqueued', { jobId: 'sw_1' });
    const [resolved] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(resolved).toMatchObject({
      outcome: 'resolved',
      detail: 'Resolved. The suggestion was confirmed: its message shows the switch.',
    });
    expect(h.sink.refreshCalls[0]?.refs).toEqual([]);
  });

  it('a plan made before alerts were listed still has its suggestion marked resolved (the message refs)', async () => {
    h = await createHarness();
    await h.service.handle([alert(h)]);
    // What an incident recorded by an older Switchyard looks like: no alert id.
    const key = h.dedupe.key({ environment: 'production', source: 'generic', fingerprint: 'incident-1' });
    await h.redis.hdel(key, 'alertId');
    const [resolved] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(resolved?.outcome).toBe('resolved');
    expect(h.sink.refreshCalls).toHaveLength(0);
    expect(h.sink.resolvedCalls[0]?.refs.map((r) => r.messageId).sort()).toEqual(['msg-1', 'msg-2']);
    expect(h.sink.resolvedCalls[0]?.input).toMatchObject({
      environment: 'production',
      sentence: DEMO_SENTENCE,
    });
  });

  it('a RESOLVED alert that races the posting still marks the suggestion', async () => {
    h = await createHarness();
    let open: () => void = () => {};
    h.sink.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const firing = h.service.handle([alert(h)]);
    while (h.sink.suggestions.length === 0) await new Promise<void>((r) => setImmediate(r));
    const [resolved] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(resolved?.detail).toContain('being posted');
    expect(h.sink.refreshCalls).toHaveLength(0);
    open();
    await firing;
    expect(h.sink.refreshCalls).toHaveLength(1);
    expect(h.sink.refreshCalls[0]?.alerts[0]?.resolvedAt).toBeDefined();
  });

  it('a RESOLVED whose edit failed answers failed; the retry edits the suggestion, once', async () => {
    h = await createHarness();
    const [suggested] = await h.service.handle([alert(h)]);
    h.sink.failRefresh = 1;
    const [failed] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(failed).toMatchObject({ outcome: 'failed', planId: suggested?.planId });
    expect(failed?.detail).toContain('Editing the suggestion failed: chat API unavailable');
    expect(h.sink.refreshCalls).toHaveLength(0);
    const [retry] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(retry).toMatchObject({ outcome: 'resolved', planId: suggested?.planId });
    expect(h.sink.refreshCalls).toHaveLength(1);
    expect(h.sink.refreshCalls[0]?.refs.map((r) => r.messageId).sort()).toEqual(['msg-1', 'msg-2']);
    const [again] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(again?.outcome).toBe('resolved_unknown');
    expect(h.sink.refreshCalls).toHaveLength(1);
  });

  it('concurrent retries of a RESOLVED whose edit failed edit the suggestion once', async () => {
    h = await createHarness();
    const harness = h;
    await h.service.handle([alert(h)]);
    h.sink.failRefresh = 1;
    await h.service.handle([alert(h, { status: 'resolved' })]);
    const retries = await Promise.all(
      Array.from({ length: 20 }, () => harness.service.handle([alert(harness, { status: 'resolved' })])),
    );
    const outcomes = retries.flat().map((r) => r.outcome);
    expect(outcomes.filter((o) => o === 'resolved')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'resolved_unknown')).toHaveLength(19);
    expect(h.sink.refreshCalls).toHaveLength(1);
  });

  it('when the edit after a racing RESOLVED fails, a repeated RESOLVED edits the suggestion', async () => {
    h = await createHarness();
    let open: () => void = () => {};
    h.sink.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const firing = h.service.handle([alert(h)]);
    while (h.sink.suggestions.length === 0) await new Promise<void>((r) => setImmediate(r));
    const [raced] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(raced?.outcome).toBe('resolved');
    h.sink.failRefresh = 1;
    open();
    expect((await firing)[0]?.outcome).toBe('suggested');
    expect(h.sink.refreshCalls).toHaveLength(0);
    const [repeated] = await h.service.handle([alert(h, { status: 'resolved' })]);
    expect(repeated?.outcome).toBe('resolved');
    expect(h.sink.refreshCalls).toHaveLength(1);
  });

  it('counts every alert once as failed when handling throws before any (the platform unreachable)', async () => {
    h = await createHarness();
    h.platform.listEnvironments = async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.1:443');
    };
    await expect(
      h.service.handle([alert(h, { fingerprint: 'a' }), alert(h, { fingerprint: 'b' })]),
    ).rejects.toThrow('ECONNREFUSED');
    const counted = (await h.metrics.alerts.get()).values.map((v) => `${v.labels.outcome}:${v.value}`);
    expect(counted).toEqual(['failed:2']);
  });

  it('ignores unmapped alerts quietly and counts them', async () => {
    h = await createHarness();
    const results = await h.service.handle([
      alert(h, { labels: { env: 'qa' } }),
      alert(h, { labels: {}, title: 'disk full on db-7', source: 'datadog' }),
    ]);
    expect(results.map((r) => r.outcome)).toEqual(['unmapped', 'unmapped']);
    expect(h.sink.suggestions).toHaveLength(0);
    expect(await alertCount(h.metrics, 'unmapped')).toBe(2);
    expect(await alertCount(h.metrics, 'unmapped', 'datadog')).toBe(1);
    const text = await h.metrics.registry.metrics();
    expect(text).toContain('switchyard_alerts_total{source="generic",outcome="unmapped"} 1');
  });

  it('maps through alertMatchers (service name in the title)', async () => {
    h = await createHarness();
    const [r] = await h.service.handle([alert(h, { labels: { service: 'checkout-api' } })]);
    expect(r).toMatchObject({ environment: 'production', outcome: 'suggested' });
  });

  it('outside the window posts nothing by default', async () => {
    h = await createHarness();
    const [r] = await h.service.handle([alert(h, { startedAt: h.clock.now() + 30 * MINUTE })]);
    expect(r?.outcome).toBe('outside_window');
    expect(r?.detail).toContain('went live 70 minutes before');
    expect(h.sink.suggestions).toHaveLength(0);
  });

  it('outside the window posts a note without a plan when configured', async () => {
    h = await createHarness({
      file: {
        alerts: { outsideWindow: 'note', correlationWindow: '5m' },
        environments: { production: { channels: { slack: 'C0ALERTS' } } },
      },
    });
    const [r] = await h.service.handle([alert(h)]);
    expect(r?.outcome).toBe('outside_window');
    expect(h.sink.suggestions).toHaveLength(1);
    expect(h.sink.suggestions[0]?.kind).toBe('note');
    expect(h.sink.suggestions[0]?.plan).toBeUndefined();
  });

  it('posts one outside-the-window note per deployment and place, however many incidents', async () => {
    const x = await createHarness({
      file: {
        alerts: { outsideWindow: 'note', correlationWindow: '5m' },
        environments: { production: { channels: { slack: 'C0ALERTS' } } },
      },
    });
    h = x;
    const storm = Array.from({ length: 10 }, (_, i) => alert(x, { fingerprint: `incident-${i}` }));
    const results = await x.service.handle(storm);
    expect(results.map((r) => r.outcome)).toEqual(storm.map(() => 'outside_window'));
    expect(x.sink.suggestions.filter((s) => s.kind === 'note')).toHaveLength(1);
  });

  it('says why when nothing went live before the alert', async () => {
    h = await createHarness();
    const [r] = await h.service.handle([alert(h, { startedAt: h.clock.now() - 100 * 3_600_000 })]);
    expect(r?.outcome).toBe('no_correlation');
    expect(h.sink.suggestions).toHaveLength(0);
  });

  it('links to the running job instead of suggesting while the environment is switching', async () => {
    h = await createHarness();
    h.jobs.active = { jobId: 'job_123', planId: 'plan_abc' };
    const [r] = await h.service.handle([alert(h)]);
    expect(r).toMatchObject({ outcome: 'linked_job', jobId: 'job_123', planId: 'plan_abc' });
    expect(h.sink.suggestions).toHaveLength(0);
    expect(h.sink.links).toHaveLength(1);
    expect(h.sink.links[0]?.jobId).toBe('job_123');
  });

  it('links a running job once per place however many incidents fire while it runs; a new job gets its own link', async () => {
    const x = await createHarness();
    h = x;
    x.jobs.active = { jobId: 'job_123', planId: 'plan_abc' };
    const storm = Array.from({ length: 20 }, (_, i) => alert(x, { fingerprint: `incident-${i}` }));
    const results = await x.service.handle(storm);
    expect(results.map((r) => r.outcome)).toEqual(storm.map(() => 'linked_job'));
    expect(x.sink.links).toHaveLength(1);
    // The next switch of the environment is linked again.
    x.jobs.active = { jobId: 'job_456', planId: 'plan_def' };
    await x.service.handle([alert(x, { fingerprint: 'incident-next' })]);
    expect(x.sink.links.map((l) => l.jobId)).toEqual(['job_123', 'job_456']);
  });

  it('a running-job link that could not be posted is tried again by the next alert', async () => {
    h = await createHarness();
    h.jobs.active = { jobId: 'job_123', planId: 'plan_abc' };
    const link = h.sink.linkRunningJob.bind(h.sink);
    let failing = true;
    h.sink.linkRunningJob = async (input) => {
      if (failing) {
        failing = false;
        throw new Error('chat API unavailable');
      }
      return link(input);
    };
    await h.service.handle([alert(h, { fingerprint: 'incident-a' })]);
    expect(h.sink.links).toHaveLength(0);
    await h.service.handle([alert(h, { fingerprint: 'incident-b' })]);
    expect(h.sink.links).toHaveLength(1);
  });

  it('threads under the alert message when the alert came from chat', async () => {
    h = await createHarness();
    await h.service.handle([alert(h)], {
      surface: 'slack',
      channel: 'C0WATCHED',
      messageId: '1732881000.000100',
    });
    expect(h.sink.suggestions[0]?.destinations).toEqual([
      { surface: 'slack', channel: 'C0WATCHED', threadId: '1732881000.000100' },
    ]);
  });

  it('falls back to SLACK_ALERT_CHANNEL / DISCORD_ALERT_CHANNEL, and says when there is no channel', async () => {
    h = await createHarness({
      file: { environments: { production: {} } },
      env: { SLACK_ALERT_CHANNEL: 'C0FALLBACK', DISCORD_ALERT_CHANNEL: '998877665544' },
    });
    await h.service.handle([alert(h)]);
    expect(h.sink.suggestions[0]?.destinations).toEqual([
      { surface: 'slack', channel: 'C0FALLBACK' },
      { surface: 'discord', channel: '998877665544' },
    ]);
    await h.close();
    h = await createHarness({ file: { environments: { production: {} } } });
    const [r] = await h.service.handle([alert(h)]);
    expect(r?.outcome).toBe('no_destination');
    expect(r?.detail).toContain('SLACK_ALERT_CHANNEL');
  });

  it('a dismissed suggestion is not suggested again by later alerts for the same rollback; a person can still ask', async () => {
    h = await createHarness();
    const [first] = await h.service.handle([alert(h)]);
    const oncall = { surface: 'slack' as const, userId: 'U0ONCALL', displayName: 'Ana' };
    expect((await h.flow.dismiss(oncall, first?.planId ?? '')).status).toBe('cancelled');
    const [later] = await h.service.handle([alert(h, { fingerprint: 'incident-2', title: 'Latency' })]);
    expect(later).toMatchObject({ environment: 'production', outcome: 'dismissed' });
    expect(later?.detail).toMatch(
      /^Ana dismissed the suggestion to roll back production to dep_3hd7xa \(.+ UTC\)/,
    );
    expect(later?.detail).toContain('/rollback production still offers it');
    expect(h.sink.suggestions).toHaveLength(1);
    expect(await alertCount(h.metrics, 'dismissed')).toBe(1);
    // The dismissed record is kept (nothing replaced it), and a person's /rollback still makes a plan.
    expect((await h.flow.get(first?.planId ?? ''))?.state).toBe('cancelled');
    const asked = await h.flow.plan(oncall, 'rollback', 'production');
    expect(asked.ok && asked.plan.id).toBe(first?.planId);
    // Cancel (not Dismiss) is only "not now": a later alert suggests again.
    const h2 = await createHarness();
    try {
      const [one] = await h2.service.handle([alert(h2)]);
      await h2.flow.cancel(oncall, one?.planId ?? '');
      const [two] = await h2.service.handle([alert(h2, { fingerprint: 'incident-2' })]);
      expect(two?.outcome).toBe('suggested');
    } finally {
      await h2.close();
    }
  });

  it('a failed post gives the incident up so a later alert tries again', async () => {
    h = await createHarness();
    h.sink.failing = true;
    const [first] = await h.service.handle([alert(h)]);
    expect(first?.outcome).toBe('failed');
    expect(first?.detail).toContain('chat API unavailable');
    h.sink.failing = false;
    const [second] = await h.service.handle([alert(h)]);
    expect(second?.outcome).toBe('suggested');
  });
});

const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');
function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(join(fixtureDir, name), 'utf8')) as T;
}

/** The alerts of a vendor payload, parsed as the webhook does. */
function parsed(h: Harness, source: AlertSource, body: unknown): NormalizedAlert[] {
  const r = parseAlertPayload(source, body, { now: h.clock.now() });
  if (!r.ok) throw new Error(`expected a valid payload: ${r.refusal.message}`);
  return r.value;
}

describe('AlertService: incidents that span environments', () => {
  type GrafanaMember = { status: string; labels: Record<string, string>; endsAt: string };
  /** Grafana's group "High latency" (grouped by alert rule) firing in production and preview. */
  function grafanaBothFiring() {
    const body = fixture<{ status: string; title: string; alerts: GrafanaMember[] }>(
      'grafana-spanning-environments.json',
    );
    for (const m of body.alerts) {
      m.status = 'firing';
      m.endsAt = '0001-01-01T00:00:00Z';
    }
    body.title = '[FIRING:2] High latency (checkout blue)';
    return body;
  }
  const record = (h: Harness, source: string, environment: string, fingerprint: string) =>
    h.dedupe.get({ environment, source, fingerprint });

  it('a group member that resolved while the group fires in another environment resolves its own environment', async () => {
    h = await createHarness();
    const firing = await h.service.handle(parsed(h, 'grafana', grafanaBothFiring()));
    expect(firing.map((r) => [r.environment, r.status, r.outcome])).toEqual([
      ['production', 'firing', 'suggested'],
      // The demo's preview went live long before: nothing to post, but the incident is claimed.
      ['preview', 'firing', 'outside_window'],
    ]);
    const key = '{}:{alertname="High latency"}';
    // Production recovers; preview still fires (Grafana's documented payload: status "firing").
    const after = await h.service.handle(parsed(h, 'grafana', fixture('grafana-spanning-environments.json')));
    expect(after.map((r) => [r.environment, r.status, r.outcome])).toEqual([
      ['preview', 'firing', 'deduplicated'],
      ['production', 'resolved', 'resolved'],
    ]);
    await h.service.idle();
    expect((await record(h, 'grafana', 'production', key))?.resolved).toBe(true);
    expect((await record(h, 'grafana', 'preview', key))?.resolved).toBe(false);
    // The production suggestion now lists its alert as resolved.
    const plan = await h.flow.get(firing[0]?.planId ?? '');
    expect(plan?.alerts?.map((a) => a.resolvedAt !== undefined)).toEqual([true]);
    // A new bad deploy within hours: production firing again is a new occurrence, not a duplicate.
    const again = await h.service.handle(parsed(h, 'grafana', grafanaBothFiring()));
    expect(again.find((r) => r.environment === 'production')?.outcome).not.toBe('deduplicated');
    expect((await record(h, 'grafana', 'production', key))?.resolved).toBe(false);
  });

  it('a group member that resolved while another member still fires in its environment leaves the incident open', async () => {
    h = await createHarness();
    const startedAt = h.clock.now() - 33 * MINUTE;
    const member = (instance: string, status: 'firing' | 'resolved') =>
      normalizedAlert({
        source: 'alertmanager',
        status,
        title: 'InstanceDown',
        fingerprint: '{}:{alertname="InstanceDown"}',
        startedAt,
        labels: { env: 'production', instance },
        text: '',
      });
    const [first] = await h.service.handle([member('web-1', 'firing'), member('web-2', 'firing')]);
    expect(first?.outcome).toBe('suggested');
    const results = await h.service.handle([member('web-1', 'firing'), member('web-2', 'resolved')]);
    expect(results.map((r) => [r.status, r.outcome])).toEqual([
      ['firing', 'deduplicated'],
      ['resolved', 'ignored'],
    ]);
    expect(results[1]?.detail).toBe(
      'Other alerts of this group still fire in production: its incident resolves when none does.',
    );
    expect((await record(h, 'alertmanager', 'production', '{}:{alertname="InstanceDown"}'))?.resolved).toBe(
      false,
    );
    expect(await alertCount(h.metrics, 'ignored', 'alertmanager')).toBe(1);
    // Once no member fires there, the incident resolves.
    const [last] = await h.service.handle([member('web-1', 'resolved'), member('web-2', 'resolved')]);
    expect(last?.outcome).toBe('resolved');
  });

  it('a Sentry issue resolved without an environment resolves it in every environment it alerted in, one result each', async () => {
    h = await createHarness();
    const issueAlert = (environment: string) => {
      const body = fixture<{ data: { event: { tags: [string, string][]; environment?: string } } }>(
        'sentry-issue-alert.json',
      );
      body.data.event.tags = body.data.event.tags.map(([k, v]) => [k, k === 'environment' ? environment : v]);
      body.data.event.environment = environment;
      return body;
    };
    const [prod] = await h.service.handle(parsed(h, 'sentry', issueAlert('production')));
    const [preview] = await h.service.handle(parsed(h, 'sentry', issueAlert('preview')));
    expect([prod?.environment, preview?.environment]).toEqual(['production', 'preview']);
    await h.service.idle();
    // The issue webhook carries no environment.
    const resolved = await h.service.handle(parsed(h, 'sentry', fixture('sentry-issue-resolved.json')));
    expect(resolved.map((r) => [r.environment, r.outcome])).toEqual([
      ['production', 'resolved'],
      ['preview', 'resolved'],
    ]);
    expect((await record(h, 'sentry', 'production', '1117540176'))?.resolved).toBe(true);
    expect((await record(h, 'sentry', 'preview', '1117540176'))?.resolved).toBe(true);
  });

  it('a Sentry issue resolved without an environment is not placed by an alertMatchers entry its title matches', async () => {
    // production names its services, preview runs the search feature branch; the issue alerted in
    // production (its event's environment tag), and its title names search.
    h = await createHarness({
      file: {
        environments: {
          production: { channels: { slack: 'C0ALERTS' }, alertMatchers: ['checkout'] },
          preview: { channels: { slack: 'C0PREVIEW' }, alertMatchers: ['search'] },
        },
      },
    });
    const title = 'TypeError: search results failed to load';
    const issueAlert = fixture<{ data: { event: { title: string } } }>('sentry-issue-alert.json');
    issueAlert.data.event.title = title;
    const [fired] = await h.service.handle(parsed(h, 'sentry', issueAlert));
    expect(fired).toMatchObject({ environment: 'production', outcome: 'suggested' });
    await h.service.idle();
    const issueResolved = fixture<{ data: { issue: { id: string; title: string } } }>(
      'sentry-issue-resolved.json',
    );
    issueResolved.data.issue.title = title;
    const resolved = await h.service.handle(parsed(h, 'sentry', issueResolved));
    expect(resolved.map((r) => [r.environment, r.outcome])).toEqual([['production', 'resolved']]);
    await h.service.idle();
    expect((await record(h, 'sentry', 'production', '1117540176'))?.resolved).toBe(true);
    expect(await record(h, 'sentry', 'preview', '1117540176')).toBeUndefined();
    // The production suggestion lists its alert as resolved.
    const plan = await h.flow.get(fired?.planId ?? '');
    expect(plan?.alerts?.map((a) => a.resolvedAt !== undefined)).toEqual([true]);
    // An issue that alerted nowhere: the matcher's environment answers, as it did.
    issueResolved.data.issue.id = '1117540999';
    const unknown = await h.service.handle(parsed(h, 'sentry', issueResolved));
    expect(unknown.map((r) => [r.environment, r.outcome])).toEqual([['preview', 'resolved_unknown']]);
  });

  it('Datadog default payload: a monitor recovering resolves only its own alert; each monitor is listed', async () => {
    h = await createHarness();
    const date = String(h.clock.now() - 33 * MINUTE);
    // Datadog's default webhook payload ($EVENT_MSG, $LAST_UPDATED, $EVENT_TYPE, $EVENT_TITLE, $DATE,
    // $ORG_ID / $ORG_NAME, $ID): no incident key.
    const event = (title: string, id: string) => ({
      ...fixture('datadog-default-triggered.json'),
      title,
      id,
      date,
      last_updated: date,
    });
    const [a] = await h.service.handle(
      parsed(h, 'datadog', event('[P1] [Triggered] checkout error rate is high', '1234567')),
    );
    expect(a).toMatchObject({ outcome: 'suggested', title: '[P1] checkout error rate is high' });
    const [b] = await h.service.handle(
      parsed(h, 'datadog', event('[P2] [Triggered] checkout disk usage is high', '1234568')),
    );
    expect(b?.outcome).toBe('grouped');
    await h.service.idle();
    // Monitor B (disk usage) recovers; monitor A (error rate) still fires.
    const [recovered] = await h.service.handle(
      parsed(h, 'datadog', event('[P2] [Recovered] checkout disk usage is high', '1234569')),
    );
    expect(recovered?.outcome).toBe('resolved');
    await h.service.idle();
    const plan = await h.flow.get(a?.planId ?? '');
    expect(plan?.alerts?.map((x) => [x.alert.title, x.resolvedAt !== undefined])).toEqual([
      ['[P1] checkout error rate is high', false],
      ['[P2] checkout disk usage is high', true],
    ]);
  });
});

describe('AlertService: Datadog re-notifications', () => {
  /** The monitor's first notification of the alert cycle, dated `at` ($DATE). */
  const triggered = (at: number) => ({
    ...fixture('datadog-triggered.json'),
    date: String(at),
    last_updated: String(at),
  });
  /** The same alert cycle re-sent (renotify interval), dated when it was re-sent. */
  const retriggered = (at: number) => ({
    ...fixture('datadog-retriggered.json'),
    date: String(at),
    last_updated: String(at),
  });

  it('a re-notification of an incident with no record is not correlated: its date is when it was re-sent', async () => {
    h = await createHarness();
    // Dated 7 minutes after production's deployment went live: as a first notification, it would be
    // blamed on it (see the test below).
    const [first] = await h.service.handle(parsed(h, 'datadog', retriggered(h.clock.now() - 33 * MINUTE)));
    expect(first).toMatchObject({
      environment: 'production',
      outcome: 'no_correlation',
      fingerprint: '7539816743018764000',
    });
    expect(first?.detail).toBe(RENOTIFICATION_REASON);
    expect(first?.detail).toContain('A re-notification does not say when the alert started');
    expect(h.sink.suggestions).toHaveLength(0);
    expect(await alertCount(h.metrics, 'no_correlation', 'datadog')).toBe(1);
    // The incident is kept: the next re-notification stays quiet.
    const [again] = await h.service.handle(parsed(h, 'datadog', retriggered(h.clock.now())));
    expect(again?.outcome).toBe('deduplicated');
    // Said as what it is: no one acted on it.
    expect(again?.detail).toBe(
      'An earlier alert of this incident was already answered, and no suggestion was made for it then; none is made now.',
    );
    // The default payload says so in its title's status tag only.
    const [fromTitle] = await h.service.handle(
      parsed(h, 'datadog', {
        ...fixture<Record<string, unknown>>('datadog-default-triggered.json'),
        title: '[P1] [Re-Triggered] checkout error rate is high',
        date: String(h.clock.now() - 33 * MINUTE),
      }),
    );
    expect(fromTitle).toMatchObject({ outcome: 'no_correlation', detail: RENOTIFICATION_REASON });
    expect(h.sink.suggestions).toHaveLength(0);
  });

  it('a re-notification of a known incident is deduplicated, as any repeat', async () => {
    h = await createHarness();
    const [first] = await h.service.handle(parsed(h, 'datadog', triggered(h.clock.now() - 33 * MINUTE)));
    expect(first).toMatchObject({ outcome: 'suggested', detail: DEMO_SENTENCE });
    await h.clock.advance(60 * MINUTE);
    const [again] = await h.service.handle(parsed(h, 'datadog', retriggered(h.clock.now())));
    expect(again).toMatchObject({ outcome: 'deduplicated', planId: first?.planId });
    expect(h.sink.suggestions).toHaveLength(1);
  });
});

describe('AlertService: re-notifications read from watched chat channels', () => {
  const origin = (messageId: string) => ({ surface: 'slack' as const, channel: 'C0WATCHED', messageId });
  const file = {
    alerts: { watch: { slack: ['C0WATCHED'] } },
    environments: { production: { channels: { slack: 'C0ALERTS' } }, preview: {} },
  };
  /** A message in the watched channel, posted at `at` (its start time), handled as the chat surfaces do. */
  async function post(h: Harness, text: string, at: number, messageId: string) {
    const message = parseChatAlert(text, 'C0WATCHED', 'slack', h.config, { at });
    if (message === undefined) throw new Error(`not read as an alert: ${text}`);
    const [result] = await h.service.handleChat([message], origin(messageId));
    return result;
  }

  it('a re-notification message of an incident with no record is not blamed on the deployment that just went live', async () => {
    h = await createHarness({ file, env: {} });
    const title = 'API error rate is high (production)';
    // The alert fires 7 minutes after dep_4kq9wz went live: suggested.
    const first = await post(h, `Triggered: ${title}`, h.clock.now() - 33 * MINUTE, '17.01');
    expect(first).toMatchObject({ environment: 'production', outcome: 'suggested', detail: DEMO_SENTENCE });
    // It keeps firing; 7 hours later its record has expired (Redis TTLs run on real time: by hand),
    // and an unrelated deployment goes live.
    await h.clock.advance(7 * 60 * MINUTE);
    await h.redis.del(
      h.dedupe.key({ environment: 'production', source: 'slack', fingerprint: first?.fingerprint ?? '' }),
    );
    const pushed = await h.platform.push({ environment: 'production' });
    await h.clock.advance(10_000);
    await h.platform.settle();
    expect((await h.platform.snapshot('production')).environment.currentDeploymentId).toBe(pushed.id);
    await h.clock.advance(10 * MINUTE);
    // Datadog's Slack integration re-posts it: the message is dated when it was re-sent.
    const reSent = h.clock.now();
    const again = await post(h, `Re-Triggered: ${title}`, reSent, '17.02');
    expect(again).toMatchObject({
      environment: 'production',
      outcome: 'no_correlation',
      detail: RENOTIFICATION_REASON,
      fingerprint: first?.fingerprint,
    });
    expect(h.sink.suggestions).toHaveLength(1);
    expect(await alertCount(h.metrics, 'no_correlation', 'slack')).toBe(1);
    // The incident is kept: its next re-notification stays quiet.
    await h.clock.advance(60 * MINUTE);
    expect((await post(h, `Re-Triggered: ${title}`, h.clock.now(), '17.03'))?.outcome).toBe('deduplicated');
    // The status-tag forms of the default payload, with a priority, a scope, emoji and Slack markup,
    // posted as late after the deployment (no fingerprint: each shares the environment's window,
    // cleared here to give it no record).
    const windowKey = h.dedupe.key({ environment: 'production', source: 'slack' });
    for (const text of [
      '[P1] [Re-Triggered] checkout error rate is high [prod]',
      ':rotating_light: *[Re-Warn on {host:web-1}] Disk usage is high* env:production',
      '[Renotify] checkout 5xx errors env=production',
    ]) {
      await h.redis.del(windowKey);
      const result = await post(h, text, reSent, '17.04');
      expect({ text, ...result }).toMatchObject({
        text,
        environment: 'production',
        outcome: 'no_correlation',
        detail: RENOTIFICATION_REASON,
      });
    }
    expect(h.sink.suggestions).toHaveLength(1);
    // A first notification posted then is still correlated: with the deployment that went live 10
    // minutes before it.
    await h.redis.del(windowKey);
    const fresh = await post(h, '[P1] [Triggered] checkout error rate is high [prod]', reSent, '17.05');
    expect(fresh).toMatchObject({ outcome: 'suggested', detail: expect.stringContaining(pushed.id) });
    expect(h.sink.suggestions).toHaveLength(2);
  });

  it('a re-notification message of a known incident is deduplicated, as any repeat', async () => {
    h = await createHarness({ file, env: {} });
    const title = 'API error rate is high (production)';
    const first = await post(h, `Triggered: ${title}`, h.clock.now() - 33 * MINUTE, '17.01');
    expect(first).toMatchObject({ outcome: 'suggested', detail: DEMO_SENTENCE });
    await h.clock.advance(60 * MINUTE);
    const again = await post(h, `Re-Triggered: ${title}`, h.clock.now(), '17.02');
    expect(again).toMatchObject({ outcome: 'deduplicated', planId: first?.planId });
    expect(h.sink.suggestions).toHaveLength(1);
  });

  it('a re-notification message without a fingerprint, inside its environment window, is deduplicated', async () => {
    h = await createHarness({ file, env: {} });
    const first = await post(
      h,
      '[P1] [Triggered] checkout errors [prod]',
      h.clock.now() - 33 * MINUTE,
      '17.01',
    );
    expect(first).toMatchObject({ outcome: 'suggested', detail: DEMO_SENTENCE });
    expect(first?.fingerprint).toBeUndefined();
    await h.clock.advance(5 * MINUTE);
    const again = await post(h, '[P1] [Re-Triggered] checkout errors [prod]', h.clock.now(), '17.02');
    expect(again).toMatchObject({ outcome: 'deduplicated', planId: first?.planId });
    expect(h.sink.suggestions).toHaveLength(1);
  });
});

describe('AlertService.handleChat (alerts read from chat messages)', () => {
  const origin = { surface: 'slack' as const, channel: 'C0WATCHED', messageId: '1700000000.000100' };

  it('tries a suggestion that could not be posted again, later, and posts it once', async () => {
    h = await createHarness();
    h.sink.failing = true;
    const [first] = await h.service.handleChat([alert(h)], origin);
    expect(first?.outcome).toBe('failed');
    await h.clock.advance(4_999);
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(1); // not yet
    await h.clock.advance(1); // 5 s: fails again
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(2);
    h.sink.failing = false;
    await h.clock.advance(20_000); // 4 × 5 s later: posted
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(3);
    expect(h.sink.suggestions.at(-1)?.destinations).toEqual([
      { surface: 'slack', channel: 'C0WATCHED', threadId: '1700000000.000100' },
    ]);
    await h.clock.advance(3_600_000);
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(3);
    expect(await alertCount(h.metrics, 'suggested')).toBe(1);
  });

  it('gives up after three more tries', async () => {
    h = await createHarness();
    h.sink.failing = true;
    await h.service.handleChat([alert(h)], origin);
    for (const wait of [5_000, 20_000, 80_000]) {
      await h.clock.advance(wait);
      await h.service.retriesSettled();
    }
    expect(h.sink.suggestions).toHaveLength(4);
    await h.clock.advance(3_600_000);
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(4);
  });

  it('close() drops a retry still waiting', async () => {
    h = await createHarness();
    h.sink.failing = true;
    await h.service.handleChat([alert(h)], origin);
    h.service.close();
    h.sink.failing = false;
    await h.clock.advance(3_600_000);
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(1);
  });

  it('a RESOLVED whose edit failed is tried again later, and edits once', async () => {
    h = await createHarness();
    await h.service.handleChat([alert(h)], origin);
    h.sink.failRefresh = 1;
    const [first] = await h.service.handleChat([alert(h, { status: 'resolved' })], origin);
    expect(first?.outcome).toBe('failed');
    expect(h.sink.refreshCalls).toHaveLength(0);
    await h.clock.advance(5_000);
    await h.service.retriesSettled();
    expect(h.sink.refreshCalls).toHaveLength(1);
    await h.clock.advance(3_600_000);
    await h.service.retriesSettled();
    expect(h.sink.refreshCalls).toHaveLength(1);
  });

  it('a webhook alert is not retried here: its sender retries', async () => {
    h = await createHarness();
    h.sink.failing = true;
    await h.service.handle([alert(h)]);
    await h.clock.advance(3_600_000);
    await h.service.retriesSettled();
    expect(h.sink.suggestions).toHaveLength(1);
  });
});

describe('parseChatAlert', () => {
  const file = {
    alerts: { watch: { slack: ['C0WATCHED'], discord: ['111122223333'] } },
    environments: { production: { alertMatchers: ['checkout'] }, staging: {} },
  };

  it('reads alert-bot messages in watched channels, firing and resolved with one fingerprint', async () => {
    h = await createHarness({ file });
    const at = h.clock.now();
    const firing = parseChatAlert(
      '*[FIRING:2] HighLatency (production)*\nchecker p99 3s',
      'C0WATCHED',
      'slack',
      h.config,
      { at },
    );
    expect(firing).toMatchObject({
      source: 'slack',
      status: 'firing',
      title: 'HighLatency (production)',
      labels: { env: 'production' },
      startedAt: at,
    });
    const resolved = parseChatAlert('[RESOLVED] HighLatency (production)', 'C0WATCHED', 'slack', h.config);
    expect(resolved?.status).toBe('resolved');
    expect(resolved?.fingerprint).toBe(firing?.fingerprint);
    expect(firing?.fingerprint).toBeDefined();
  });

  it('recognises env=…, [prod] and firing/resolved words; ignores chatter and unwatched channels', async () => {
    h = await createHarness({ file });
    expect(parseChatAlert('5xx spike env=staging', 'C0WATCHED', 'slack', h.config)?.labels.env).toBe(
      'staging',
    );
    expect(parseChatAlert('[prod] checkout is down', '111122223333', 'discord', h.config)).toMatchObject({
      source: 'discord',
      status: 'firing',
      labels: { env: 'production' },
    });
    expect(parseChatAlert('checkout recovered', 'C0WATCHED', 'slack', h.config)?.status).toBe('resolved');
    expect(parseChatAlert('lunch anyone?', 'C0WATCHED', 'slack', h.config)).toBeUndefined();
    expect(parseChatAlert('[prod] checkout is down', 'C0OTHER', 'slack', h.config)).toBeUndefined();
  });

  it('end to end: a chat alert naming a service through matchers is suggested in its thread', async () => {
    h = await createHarness({
      file: { ...file, environments: { production: { alertMatchers: ['checkout'] } } },
    });
    const parsed = parseChatAlert('🚨 checkout error rate 9%', 'C0WATCHED', 'slack', h.config, {
      at: h.clock.now() - 33 * MINUTE,
    });
    expect(parsed).toBeDefined();
    if (!parsed) return;
    const [r] = await h.service.handle([parsed], {
      surface: 'slack',
      channel: 'C0WATCHED',
      messageId: '17.01',
    });
    expect(r).toMatchObject({ outcome: 'suggested', detail: DEMO_SENTENCE, environment: 'production' });
    expect(h.sink.suggestions[0]?.destinations).toEqual([
      { surface: 'slack', channel: 'C0WATCHED', threadId: '17.01' },
    ]);
  });
});

describe('postedBySlot', () => {
  const ref = (surface: 'slack' | 'discord', channel: string, messageId: string) => ({
    surface,
    channel,
    messageId,
  });

  it('pairs each surface’s refs with its destinations in order, whatever channel the chat service answered with', () => {
    const posted = postedBySlot(
      [
        { surface: 'slack', channel: '#alerts' },
        { surface: 'discord', channel: '42' },
        { surface: 'slack', channel: '#oncall' },
      ],
      [ref('discord', '42', 'd1'), ref('slack', 'C0ALERTS', 's1'), ref('slack', 'C0ONCALL', 's2')],
    );
    expect(Object.fromEntries(posted)).toEqual({
      'slack:#alerts': ref('slack', 'C0ALERTS', 's1'),
      'discord:42': ref('discord', '42', 'd1'),
      'slack:#oncall': ref('slack', 'C0ONCALL', 's2'),
    });
  });

  it('a surface that answered for fewer destinations than it had is matched by channel only', () => {
    const posted = postedBySlot(
      [
        { surface: 'slack', channel: '#alerts' },
        { surface: 'slack', channel: 'C0ONCALL' },
      ],
      [ref('slack', 'C0ONCALL', 's2')],
    );
    expect(Object.fromEntries(posted)).toEqual({ 'slack:C0ONCALL': ref('slack', 'C0ONCALL', 's2') });
  });
});

describe('compositeSink and createAlertService', () => {
  it('routes destinations and refs by surface; one surface failing does not stop the other', async () => {
    h = await createHarness();
    const harness = h;
    const slack = new RecordingSink();
    const discord = new RecordingSink();
    discord.failing = true;
    const service = createAlertService({
      redis: harness.redis,
      sinks: { slack, discord },
      platform: harness.platform,
      flow: harness.flow,
      config: harness.config,
      clock: harness.clock,
      dedupe: { prefix: uniqueName('alerts-composite') },
    });
    const [r] = await service.handle([alert(harness)]);
    expect(r?.outcome).toBe('suggested');
    expect(slack.suggestions[0]?.destinations).toEqual([{ surface: 'slack', channel: 'C0ALERTS' }]);
    expect(discord.suggestions[0]?.destinations).toEqual([{ surface: 'discord', channel: '123456789012' }]);
    // The failed surface's slot was freed: the plan shows (and edits) the Slack message only.
    const record = await harness.flow.get(r?.planId ?? '');
    expect(record?.suggestions?.map((x) => [x.slot, x.ref?.surface])).toEqual([['slack:C0ALERTS', 'slack']]);
    const [resolved] = await service.handle([alert(harness, { status: 'resolved' })]);
    expect(resolved?.outcome).toBe('resolved');
    expect(slack.refreshes).toEqual([r?.planId]);
  });

  it('fails only when every surface failed', async () => {
    const a = new RecordingSink();
    const b = new RecordingSink();
    a.failing = true;
    b.failing = true;
    const sink = compositeSink({ slack: a, discord: b });
    const input = {
      kind: 'note' as const,
      environment: 'production',
      alert: normalizedAlert({
        source: 'generic',
        status: 'firing',
        title: 't',
        startedAt: 0,
        labels: {},
        text: '',
      }),
      sentence: 's',
      correlation: { kind: 'none' as const, reason: 'r' },
      destinations: [
        { surface: 'slack' as const, channel: 'C1' },
        { surface: 'discord' as const, channel: '123456' },
      ],
    };
    await expect(sink.suggest(input)).rejects.toThrow('chat API unavailable');
    b.failing = false;
    expect(await sink.suggest(input)).toEqual([
      { surface: 'discord', channel: '123456', messageId: 'msg-1' },
    ]);
  });

  it('an edit that failed on one surface fails the whole (a retry may pass), unless it was refused for good', async () => {
    const a = new RecordingSink();
    const b = new RecordingSink();
    a.failRefresh = 1;
    const sink = compositeSink({ slack: a, discord: b });
    await expect(sink.refresh?.('plan_1')).rejects.toThrow('chat API unavailable');
    expect(b.refreshes).toEqual(['plan_1']);
    const refused = compositeSink({
      slack: {
        suggest: async () => [],
        resolved: async () => undefined,
        refresh: () => Promise.reject(new PermanentChatError(new Error('message_not_found'))),
      },
      discord: b,
    });
    await expect(refused.refresh?.('plan_1')).resolves.toBeUndefined();
  });
});

/**
 * Unkey and Vercel keep no live history their APIs expose; the snapshot's `derivedLive` still lets an
 * alert after an automatic deploy be offered the rollback (before, every alert there ended in
 * `no_correlation`: "No deployment of production went live before this alert started").
 */
describe('AlertService on platforms without live history', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  function checkoutAlert(clock: ManualClock, startedAgoMs: number): NormalizedAlert {
    return normalizedAlert({
      source: 'generic',
      status: 'firing',
      title: 'Checkout 5xx above 5%',
      fingerprint: uniqueName('incident'),
      startedAt: clock.now() - startedAgoMs,
      labels: { env: 'production' },
      text: '',
    });
  }

  it('on Unkey: suggests rolling back the deployment an automatic deploy made live before the alert', async () => {
    // d2 live 20 minutes ago: within the 30 minutes Unkey keeps the replaced d1 running (afterwards
    // nothing can roll back to it).
    const { clock, platform, d1, d2 } = await unkeyAfterAutoDeploy(closers, {
      key: 'unkey_3ZserviceTestRootKey0123456789ab',
      permissions: ['environment.*.read_deployment'],
      liveAgoMs: 20 * MINUTE,
    });
    const harness = alertServiceOn(platform, clock, 'unkey');
    closers.push(() => harness.close());

    const [result] = await harness.service.handle([checkoutAlert(clock, 13 * MINUTE)]);
    const sentence = `${d2} went live at least 7 minutes before this alert started — roll back to ${d1}?`;
    expect(result).toMatchObject({ environment: 'production', outcome: 'suggested', detail: sentence });
    expect(harness.sink.suggestions).toHaveLength(1);
    expect(harness.sink.suggestions[0]?.plan?.current.id).toBe(d2);
    expect(harness.sink.suggestions[0]?.plan?.target.id).toBe(d1);
  });

  it('on Vercel: suggests rolling back the deployment an automatic deploy made live before the alert', async () => {
    const { clock, platform, d1, d2 } = await vercelAfterAutoDeploy(closers, {
      token: 'vcp_serviceTestToken0123456789abcd',
      liveAgoMs: 40 * MINUTE,
    });
    const harness = alertServiceOn(platform, clock, 'vercel');
    closers.push(() => harness.close());

    const [result] = await harness.service.handle([checkoutAlert(clock, 33 * MINUTE)]);
    const sentence = `${d2} went live 7 minutes before this alert started — roll back to ${d1}?`;
    expect(result).toMatchObject({ environment: 'production', outcome: 'suggested', detail: sentence });
    expect(harness.sink.suggestions[0]?.plan?.current.id).toBe(d2);
    expect(harness.sink.suggestions[0]?.plan?.target.id).toBe(d1);
  });

  it("on Vercel: the target is the one /rollback proposes, by Switchyard's own record too", async () => {
    const { clock, server, projectId, platform, d1, d2 } = await vercelAfterAutoDeploy(closers, {
      token: 'vcp_serviceTestToken0123456789abcd',
      liveAgoMs: 10 * MINUTE,
    });
    const harness = alertServiceOn(platform, clock, 'vercel');
    closers.push(() => harness.close());
    // Switchyard rolled back from d2 to d1 (as its worker records it); someone promoted d2 again in
    // Vercel's dashboard, and d3 went live after it.
    await platform.rollback({ environment: 'production', targetId: d1 });
    server.finishAliasJob(projectId);
    await harness.audit.append({
      at: clock.now() + 1_000,
      environment: 'production',
      action: 'rollback',
      event: 'succeeded',
      targetId: d1,
      fromId: d2,
    });
    await clock.advance(2 * MINUTE);
    await platform.promote({ environment: 'production', targetId: d2 });
    server.finishAliasJob(projectId);
    // Past the 3 minutes an alias job may take: d3 became ready after the promote was done.
    await clock.advance(4 * MINUTE);
    const d3 = server.deploy({ project: projectId });
    await clock.advance(10 * MINUTE);

    // Vercel's state says d2 was live before d3; /rollback passes over the deployment Switchyard rolled
    // back from while an older one is left, and the alert says so rather than suggest another target.
    const rollback = await harness.flow.plan(
      { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' },
      'rollback',
      'production',
    );
    if (!rollback.ok) throw new Error(rollback.refusal.message);
    expect({ current: rollback.plan.current.id, target: rollback.plan.target.id }).toEqual({
      current: d3,
      target: d1,
    });
    const [result] = await harness.service.handle([checkoutAlert(clock, 5 * MINUTE)]);
    expect(result).toMatchObject({ outcome: 'no_correlation' });
    expect(result?.detail).toContain(
      `replacing ${d2}, not ${d1} (the deployment /rollback production would go back to)`,
    );
    expect(harness.sink.suggestions).toHaveLength(0);
  });
});
