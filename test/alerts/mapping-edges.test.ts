/**
 * Which environment an alert is placed in: rules of src/alerts/mapping.ts no other test of the area
 * pinned. Each test fails on one small change the area's tests let through.
 */
import { describe, expect, it } from 'vitest';
import { compileMatchers, mapAlert } from '../../src/alerts/mapping.js';
import { type AlertOrigin, type NormalizedAlert, normalizedAlert } from '../../src/alerts/types.js';

const slugs = ['production', 'staging', 'preview'];
const matchers = compileMatchers({
  production: { alertMatchers: ['checkout-api'] },
  staging: { alertMatchers: ['/stg-[0-9]+/'] },
});

function alert(
  labels: Record<string, string>,
  title = 'Something broke',
  source: AlertOrigin = 'generic',
): NormalizedAlert {
  return normalizedAlert({ source, status: 'firing', title, startedAt: 0, labels, text: '' });
}

describe('mapAlert', () => {
  it('an environment label naming several environments places the alert nowhere, even when a matcher would match', () => {
    const r = mapAlert(alert({ env: 'staging,production' }, 'checkout-api down', 'slack'), slugs, matchers);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toContain('names several environments');
  });

  it('an alert typed in the console is read like other chat alerts: an exact name or alias, never a prefix', () => {
    expect(mapAlert(alert({ env: 'produc' }, 'down', 'console'), slugs, matchers).ok).toBe(false);
    expect(mapAlert(alert({ env: 'prd' }, 'down', 'console'), slugs, matchers)).toMatchObject({
      ok: true,
      environment: 'production',
    });
  });

  it('a blank environment label is skipped: the next environment label places the alert', () => {
    expect(mapAlert(alert({ env: '  ', environment: 'staging' }), slugs, matchers)).toMatchObject({
      ok: true,
      environment: 'staging',
      by: 'label',
    });
  });

  it('a service label names an environment whatever its case', () => {
    expect(mapAlert(alert({ service: 'Staging ' }), slugs, matchers)).toMatchObject({
      ok: true,
      environment: 'staging',
      by: 'service',
    });
  });

  it('"live" is an alias of production', () => {
    expect(mapAlert(alert({ env: 'live' }), slugs, matchers)).toMatchObject({
      ok: true,
      environment: 'production',
    });
  });

  it('matchers of two environments matching place the alert nowhere', () => {
    const r = mapAlert(alert({}, 'checkout-api on stg-3'), slugs, matchers);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toContain('production, staging');
  });

  it('a regex matcher with the g flag matches every alert it matches, not every other one', () => {
    const m = compileMatchers({ production: { alertMatchers: ['/checkout/g'] } });
    for (let i = 0; i < 3; i++) {
      expect(mapAlert(alert({}, 'checkout down'), slugs, m)).toMatchObject({
        ok: true,
        environment: 'production',
      });
    }
  });
});
