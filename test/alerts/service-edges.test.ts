/**
 * Where alert suggestions go and how resolutions are placed: rules of src/alerts/service.ts no other test
 * of the area pinned (found by mutation testing). Each test fails on one small change the area's tests
 * let through.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AlertDedupe } from '../../src/alerts/dedupe.js';
import { AlertService, type SuggestionSink } from '../../src/alerts/service.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import type { RedisClient } from '../../src/redis.js';
import { createHarness, type Harness } from '../alerts/helpers.js';

/** An AlertService whose destinations are read (nothing is posted: the collaborators are never called). */
function serviceWith(opts: {
  environments: Record<string, unknown>;
  env?: Record<string, string>;
  surfaces?: readonly ('slack' | 'discord' | 'console')[];
  defaultChannels?: { console?: string };
}): AlertService {
  const unused = () => {
    throw new Error('not used by destinations()');
  };
  return new AlertService({
    platform: { listEnvironments: unused, snapshot: unused },
    flow: { plan: unused },
    sink: { suggest: unused, resolved: unused } as SuggestionSink,
    dedupe: new AlertDedupe({} as RedisClient),
    config: {
      env: parseEnv(opts.env ?? {}),
      file: fileConfigSchema.parse({ environments: opts.environments }),
    },
    ...(opts.surfaces === undefined ? {} : { surfaces: opts.surfaces }),
    ...(opts.defaultChannels === undefined ? {} : { defaultChannels: opts.defaultChannels }),
  });
}

describe('suggestion destinations (found by mutation testing)', () => {
  it("an environment's own channel wins over SLACK_ALERT_CHANNEL / DISCORD_ALERT_CHANNEL, which serve the others", () => {
    const service = serviceWith({
      environments: { production: { channels: { slack: 'C0PROD', discord: '111111111111' } }, preview: {} },
      env: { SLACK_ALERT_CHANNEL: 'C0GLOBAL', DISCORD_ALERT_CHANNEL: '999999999999' },
    });
    expect(service.destinations('production')).toEqual([
      { surface: 'slack', channel: 'C0PROD' },
      { surface: 'discord', channel: '111111111111' },
    ]);
    expect(service.destinations('preview')).toEqual([
      { surface: 'slack', channel: 'C0GLOBAL' },
      { surface: 'discord', channel: '999999999999' },
    ]);
  });

  it('only connected surfaces get a destination', () => {
    const service = serviceWith({
      environments: { production: { channels: { slack: 'C0PROD', discord: '111111111111' } } },
      surfaces: ['discord'],
    });
    expect(service.destinations('production')).toEqual([{ surface: 'discord', channel: '111111111111' }]);
  });

  it('a chat alert is answered in its own thread: the thread it sits in, else under the alert message', () => {
    const service = serviceWith({ environments: { production: { channels: { slack: 'C0PROD' } } } });
    expect(
      service.destinations('production', {
        surface: 'slack',
        channel: 'C0WATCH',
        messageId: '2.0',
        threadId: '1.0',
      }),
    ).toEqual([{ surface: 'slack', channel: 'C0WATCH', threadId: '1.0' }]);
    expect(
      service.destinations('production', { surface: 'slack', channel: 'C0WATCH', messageId: '2.0' }),
    ).toEqual([{ surface: 'slack', channel: 'C0WATCH', threadId: '2.0' }]);
  });
});

describe('a group member placed by a matcher resolves its own environment only (found by mutation testing)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("never the group's incident in another environment where a member still fires", async () => {
    const x = await createHarness();
    h = x;
    const member = (env: string | undefined, status: 'firing' | 'resolved', title: string) =>
      x.alert({
        source: 'alertmanager',
        fingerprint: 'group-1',
        status,
        title,
        labels: env === undefined ? {} : { env },
      });
    // One group, members in production and preview: an incident in each.
    await x.service.handle([
      member('production', 'firing', 'checkout 5xx'),
      member('preview', 'firing', 'search 5xx'),
    ]);
    const preview = { environment: 'preview', source: 'alertmanager', fingerprint: 'group-1' };
    expect(await x.dedupe.get(preview)).toBeDefined();
    // The production member resolves, without its env label (the checkout matcher places it); the preview
    // member still fires.
    const results = await x.service.handle([
      member(undefined, 'resolved', 'checkout 5xx'),
      member('preview', 'firing', 'search 5xx'),
    ]);
    expect(results.map((r) => [r.environment, r.outcome])).toEqual([
      ['production', 'resolved'],
      ['preview', 'deduplicated'],
    ]);
    expect((await x.dedupe.get(preview))?.resolved).toBe(false);
  });
});

describe('a RESOLVED that raced a failed post', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('is not forgotten: the firing alert is not asked to retry (a retry would offer a rollback for an incident that is over)', async () => {
    const x = await createHarness();
    h = x;
    let open: () => void = () => {};
    x.sink.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const firing = x.service.handle([x.alert()]);
    while (x.sink.suggestions.length === 0) await new Promise<void>((r) => setImmediate(r));
    const [resolved] = await x.service.handle([x.alert({ status: 'resolved' })]);
    expect(resolved?.detail).toBe('Resolved while the suggestion was being posted; it will say so.');
    // the chat API fails the post
    x.sink.failing = true;
    open();
    const [answer] = await firing;
    expect(answer).toMatchObject({ outcome: 'failed', retry: false });
    expect(answer?.detail).toMatch(/and the incident resolved meanwhile: nothing is suggested for it\.$/);
  });

  it('a post that fails with no resolution meanwhile still asks for a retry', async () => {
    const x = await createHarness();
    h = x;
    x.sink.failing = true;
    const [answer] = await x.service.handle([x.alert()]);
    expect(answer).toMatchObject({ outcome: 'failed', retry: true });
    x.sink.failing = false;
    expect((await x.service.handle([x.alert()]))[0]?.outcome).toBe('suggested');
  });
});
