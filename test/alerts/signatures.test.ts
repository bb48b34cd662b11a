import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  safeEqual,
  verifyBearer,
  verifyPagerDutySignature,
  verifySentrySignature,
} from '../../src/alerts/signatures.js';

const body = Buffer.from('{"action":"triggered","data":{"event":{"title":"é"}}}', 'utf8');
const sign = (secret: string, b: Buffer) => createHmac('sha256', secret).update(b).digest('hex');

describe('safeEqual', () => {
  it('compares exactly', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
  });
});

describe('bearer', () => {
  it('accepts exactly the secret', () => {
    expect(verifyBearer('Bearer s3cret-value', 's3cret-value')).toBe(true);
    expect(verifyBearer('bearer   s3cret-value', 's3cret-value')).toBe(true);
    expect(verifyBearer('Bearer s3cret-valuE', 's3cret-value')).toBe(false);
    expect(verifyBearer('Basic s3cret-value', 's3cret-value')).toBe(false);
    expect(verifyBearer('s3cret-value', 's3cret-value')).toBe(false);
    expect(verifyBearer(undefined, 's3cret-value')).toBe(false);
  });
});

describe('Sentry-Hook-Signature', () => {
  const secret = 'sentry-client-secret';
  it('accepts a good signature over the raw body', () => {
    expect(verifySentrySignature(body, sign(secret, body), secret)).toBe(true);
    expect(verifySentrySignature(body, sign(secret, body).toUpperCase(), secret)).toBe(true);
  });
  it('refuses bad, missing and other-body signatures', () => {
    expect(verifySentrySignature(body, sign('other', body), secret)).toBe(false);
    expect(verifySentrySignature(body, undefined, secret)).toBe(false);
    expect(verifySentrySignature(body, '', secret)).toBe(false);
    expect(verifySentrySignature(Buffer.from(`${body} `), sign(secret, body), secret)).toBe(false);
  });
});

describe('X-PagerDuty-Signature', () => {
  const secret = 'pd-signing-secret';
  it('accepts one good v1 signature', () => {
    expect(verifyPagerDutySignature(body, `v1=${sign(secret, body)}`, secret)).toBe(true);
  });
  it('accepts when any of several signatures matches (secret rotation)', () => {
    const header = `v1=${sign('old-secret', body)},v1=${sign(secret, body)}`;
    expect(verifyPagerDutySignature(body, header, secret)).toBe(true);
    expect(verifyPagerDutySignature(body, `v1=${sign(secret, body)}, v1=${sign('x', body)}`, secret)).toBe(
      true,
    );
  });
  it('refuses bad, missing, unversioned and other-version signatures', () => {
    expect(verifyPagerDutySignature(body, `v1=${sign('x', body)},v1=${sign('y', body)}`, secret)).toBe(false);
    expect(verifyPagerDutySignature(body, undefined, secret)).toBe(false);
    expect(verifyPagerDutySignature(body, sign(secret, body), secret)).toBe(false);
    expect(verifyPagerDutySignature(body, `v2=${sign(secret, body)}`, secret)).toBe(false);
    expect(verifyPagerDutySignature(body, '', secret)).toBe(false);
  });
});
