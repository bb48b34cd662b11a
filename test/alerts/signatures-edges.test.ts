/**
 * Webhook authentication details no other test pinned down (found by mutation testing of
 * src/alerts/signatures.ts).
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyBearer, verifyPagerDutySignature } from '../../src/alerts/signatures.js';

const body = Buffer.from('{"event":{"event_type":"incident.triggered"}}', 'utf8');
const sign = (secret: string, b: Buffer) => createHmac('sha256', secret).update(b).digest('hex');

describe('bearer', () => {
  it('needs the scheme exactly: "Bearer", then space, then the secret', () => {
    expect(verifyBearer('Bearers3cret-value', 's3cret-value')).toBe(false);
    expect(verifyBearer('XBearer s3cret-value', 's3cret-value')).toBe(false);
    expect(verifyBearer('Token Bearer s3cret-value', 's3cret-value')).toBe(false);
    expect(verifyBearer('\tBearer\ts3cret-value ', 's3cret-value')).toBe(true);
  });
});

describe('X-PagerDuty-Signature', () => {
  const secret = 'pd-signing-secret';
  it('accepts the matching signature wherever it sits, spaces after the commas included', () => {
    expect(verifyPagerDutySignature(body, `v1=${sign('old', body)}, v1=${sign(secret, body)}`, secret)).toBe(
      true,
    );
  });
  it('accepts an upper-case hex signature (as for Sentry)', () => {
    expect(verifyPagerDutySignature(body, `v1=${sign(secret, body).toUpperCase()}`, secret)).toBe(true);
  });
});
