/** parseChatAlert: how a message in a watched channel is read as an alert. Pure; no Redis. */
import { describe, expect, it } from 'vitest';
import { parseChatAlert } from '../../src/alerts/chat.js';
import { compileMatchers, mapAlert } from '../../src/alerts/mapping.js';
import { fileConfigSchema } from '../../src/config.js';

const config = {
  file: fileConfigSchema.parse({
    alerts: { watch: { slack: ['C0WATCHED'], discord: ['111122223333'] } },
    environments: { production: { alertMatchers: ['checkout'] }, staging: {}, preview: {} },
  }),
};
const read = (text: string) => parseChatAlert(text, 'C0WATCHED', 'slack', config, { at: 1_000 });

describe('parseChatAlert: status', () => {
  it("reads Grafana's [FIRING:n, RESOLVED:m] title as firing, the same incident as [FIRING:n]", () => {
    const mixed = read('[FIRING:2, RESOLVED:1] HighLatency (production)');
    const firing = read('[FIRING:3] HighLatency (production)');
    const resolved = read('[RESOLVED] HighLatency (production)');
    expect(mixed).toMatchObject({ status: 'firing', title: 'HighLatency (production)' });
    expect(mixed?.fingerprint).toBeDefined();
    expect(mixed?.fingerprint).toBe(firing?.fingerprint);
    expect(resolved?.status).toBe('resolved');
    expect(resolved?.fingerprint).toBe(firing?.fingerprint);
  });

  it('does not count negated resolution words ("not resolved", "no recovery yet") as a resolution', () => {
    expect(read('🚨 checkout is down in [prod] since the deploy, still not resolved')?.status).toBe('firing');
    expect(read('checkout 5xx errors in [prod], no recovery yet')?.status).toBe('firing');
    expect(read('checkout errors: unresolved')?.status).toBe('firing');
    expect(read("checkout is failing and hasn't recovered")?.status).toBe('firing');
    expect(read('checkout errors not yet resolved')?.status).toBe('firing');
    expect(read('checkout latency is not back to normal')?.status).toBe('firing');
    // Plain resolution words still resolve.
    expect(read('checkout errors resolved')?.status).toBe('resolved');
    expect(read('checkout recovered after the rollback')?.status).toBe('resolved');
    // A negation alone, with no firing word, is not an alert at all.
    expect(read('not resolved?')).toBeUndefined();
  });

  it('prefers a leading status tag over words later in the message', () => {
    expect(
      read('[FIRING:1] CheckoutErrors (production)\nsummary: previously resolved, back again')?.status,
    ).toBe('firing');
    expect(read('[P1] [Triggered] checkout errors, recovery expected soon')?.status).toBe('firing');
    expect(read('[P1] [Recovered] checkout 5xx errors')?.status).toBe('resolved');
    expect(read('[prod] [RESOLVED] checkout errors down to 0.1%')?.status).toBe('resolved');
    expect(read('Recovered: checkout errors are down')?.status).toBe('resolved');
  });
});

describe('parseChatAlert: re-notifications', () => {
  it("marks a firing message whose status is a re-notification (Datadog's Re-Triggered, Re-Warn, Re-No Data, Renotify): it is posted when re-sent", () => {
    const renotified = (text: string) => read(text)?.renotification === true;
    // A bot title: the same incident as its first notification.
    const again = read('Re-Triggered: API error rate is high (production)');
    expect(again).toMatchObject({ status: 'firing', renotification: true, startedAt: 1_000 });
    expect(again?.fingerprint).toBe(read('Triggered: API error rate is high (production)')?.fingerprint);
    // A status tag as the Datadog webhook reads its title: wherever it sits among the leading tags,
    // with a scope, after emoji, in Slack markup.
    for (const text of [
      '[Re-Triggered] checkout errors [prod]',
      '[P1] [Re-Triggered on {env:production,service:api}] API error rate is high',
      ':rotating_light: *[Re-Warn on {host:web-1}] Disk usage is high* env:production',
      '🔥 [Re-No Data] checkout errors',
      '[P2] [Renotify] checkout 5xx errors',
      '  re-triggered: checkout errors',
    ])
      expect(renotified(text), text).toBe(true);
    // A first notification, a resolution, or a re-notification that is not the message's status.
    for (const text of [
      'Triggered: API error rate is high (production)',
      '[P1] [Triggered] checkout errors',
      '[Warn] checkout latency',
      '[FIRING:1] HighLatency (production)',
      '[FIRING:1] [Re-Triggered] HighLatency (production)',
      '[P1] [Triggered] [Re-Triggered] checkout errors',
      'Re-Triggered checkout errors',
      'checkout errors re-triggered after the deploy',
      '[Recovered] checkout errors',
      'Recovered: checkout errors',
    ])
      expect(renotified(text), text).toBe(false);
    expect(read('[Recovered] checkout errors')?.status).toBe('resolved');
    expect(read('[Triggered] checkout errors')).not.toHaveProperty('renotification');
  });
});

describe('parseChatAlert: environment', () => {
  it('takes a bracketed environment only when exact or an alias, never a prefix', () => {
    expect(read('[product] signup errors firing on the EU cluster')?.labels.env).toBeUndefined();
    expect(read('(pro) errors firing')?.labels.env).toBeUndefined();
    expect(read('(pre) errors firing')?.labels.env).toBeUndefined();
    expect(read('(st) errors firing')?.labels.env).toBeUndefined();
    expect(read('[Production] errors firing')?.labels.env).toBe('production');
    expect(read('[prod] errors firing')?.labels.env).toBe('production');
    expect(read('(stg) errors firing')?.labels.env).toBe('staging');
    expect(read('[staging] errors firing')?.labels.env).toBe('staging');
  });
});

describe('parseChatAlert: emoji before the status tag', () => {
  it('an emoji-prefixed [FIRING]/[RESOLVED] title is the same incident as the plain one, with a clean title', () => {
    const plain = read('[FIRING:1] HighLatency (production)');
    expect(plain?.fingerprint).toBeDefined();
    for (const text of [
      ':rotating_light: [FIRING:1] HighLatency (production)',
      ':fire::rotating_light: [FIRING:2] HighLatency (production)',
      '🔥 [FIRING:1] HighLatency (production)',
      '🚨️[FIRING:1] HighLatency (production)',
      '👩🏽‍🚒 🇪🇺 [FIRING:1] HighLatency (production)',
    ]) {
      expect({ text, ...read(text) }).toMatchObject({
        text,
        status: 'firing',
        title: 'HighLatency (production)',
        fingerprint: plain?.fingerprint,
      });
    }
    expect(read(':white_check_mark: [RESOLVED] HighLatency (production)')).toMatchObject({
      status: 'resolved',
      title: 'HighLatency (production)',
      fingerprint: plain?.fingerprint,
    });
    // Discord's custom emoji (<:name:id>) and its Unicode emoji read the same on Discord.
    const discord = (text: string) => parseChatAlert(text, '111122223333', 'discord', config);
    expect(discord('<:alert:112233445566778899> [FIRING:1] HighLatency (production)')?.fingerprint).toBe(
      discord('[FIRING:1] HighLatency (production)')?.fingerprint,
    );
    expect(discord('✅ [RESOLVED] HighLatency (production)')?.status).toBe('resolved');
    // Leading tags after an emoji decide too.
    expect(read(':large_green_circle: [P1] [Recovered] checkout 5xx errors')?.status).toBe('resolved');
  });

  it('keeps the underscores of an emoji shortcode in titles (bold/italic marks still go)', () => {
    expect(read('checkout down :rotating_light: *now*')?.title).toBe('checkout down :rotating_light: now');
    expect(read('_checkout_ errors on [prod]')?.title).toBe('checkout errors on [prod]');
  });
});

describe('parseChatAlert: a message naming several environments', () => {
  const slugs = Object.keys(config.file.environments);
  const matchers = compileMatchers(config.file.environments);

  it('is mapped to none of them, whichever is written first', () => {
    // Alertmanager/Grafana group by alertname: one message lists the alerts of both environments.
    const grouped = read(
      '[FIRING:2] HighLatency\nAlerts Firing:\nLabels:\n - alertname = HighLatency\n - env = staging\nLabels:\n - alertname = HighLatency\n - env = production',
    );
    expect(grouped?.status).toBe('firing');
    expect(grouped?.labels.env).toBe('staging,production');
    expect(grouped && mapAlert(grouped, slugs, matchers)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('env=staging,production names several environments'),
    });
    // Bracketed and assigned names count alike; aliases resolve before comparing.
    const mixed = read('[FIRING:1] checkout errors (staging) env=prod');
    expect(mixed && mapAlert(mixed, slugs, matchers)).toMatchObject({ ok: false });
    // A matcher (production's `checkout`) must not pick one either.
    expect(mixed?.labels.env).toBe('staging,production');
  });

  it('names one environment when every mention is the same one (an alias included)', () => {
    const twice = read('[FIRING:2] HighLatency (production)\n - env = production\n - env = prod');
    expect(twice?.labels.env).toBe('production');
    expect(twice && mapAlert(twice, slugs, matchers)).toMatchObject({ ok: true, environment: 'production' });
  });
});

describe('parseChatAlert: env/environment written in prose', () => {
  it('"env: the checkout service is down" names no environment (alertMatchers still apply)', () => {
    const prose = read('env: the checkout service is down');
    expect(prose?.labels.env).toBeUndefined();
    const slugs = Object.keys(config.file.environments);
    expect(prose && mapAlert(prose, slugs, compileMatchers(config.file.environments))).toMatchObject({
      ok: true,
      environment: 'production',
    });
    expect(read('our environment: it is down again')?.labels.env).toBeUndefined();
  });

  it('a label-like value counts, even one naming no known environment (the alert then stays unmapped)', () => {
    expect(read('[FIRING] checkout down env=qa')?.labels.env).toBe('qa');
    expect(read('[FIRING] checkout down env:qa service:web')?.labels.env).toBe('qa');
    expect(read('[FIRING] checkout down\nenvironment: qa\nservice: web')?.labels.env).toBe('qa');
    expect(read('checkout is down, environment: qa.')?.labels.env).toBe('qa');
    expect(read('checkout is down in environment: production, since 10:00')?.labels.env).toBe('production');
    expect(read('env: prod checkout is down')?.labels.env).toBe('production');
  });
});
