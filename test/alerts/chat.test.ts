/** parseChatAlert: how a message in a watched channel is read as an alert. Pure; no Redis. */
import { describe, expect, it } from 'vitest';
import { parseChatAlert } from '../../src/alerts/chat.js';
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
