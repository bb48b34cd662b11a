/**
 * Webhook authentication primitives: the shared-secret bearer token (`ALERT_WEBHOOK_SECRET`, which
 * Alertmanager's `http_config.authorization` sends as `Authorization: Bearer <secret>`) and the vendor
 * signatures over the raw body:
 * - Sentry: `Sentry-Hook-Signature` = hex HMAC-SHA256 of the body keyed with the integration's client secret;
 * - PagerDuty v3: `X-PagerDuty-Signature` = one or more comma-separated `v1=<hex HMAC-SHA256>` (several
 *   while a secret is being rotated); any one matching is enough.
 * Every comparison is constant-time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Constant-time string equality. Both sides are hashed first so that neither the length nor the
 * position of the first difference leaks through timing.
 */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

/** Hex HMAC-SHA256 of `body` keyed with `secret`. */
export function hmacSha256Hex(secret: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** True when the `Authorization` header is exactly `Bearer <secret>` (scheme case-insensitive). */
export function verifyBearer(header: string | undefined, secret: string): boolean {
  if (header === undefined) return false;
  const m = /^Bearer[ \t]+(.+)$/i.exec(header.trim());
  return m?.[1] !== undefined && safeEqual(m[1].trim(), secret);
}

/** Verifies Sentry's `Sentry-Hook-Signature` over the raw body. */
export function verifySentrySignature(body: Buffer, header: string | undefined, secret: string): boolean {
  if (header === undefined || header.trim() === '') return false;
  return safeEqual(header.trim().toLowerCase(), hmacSha256Hex(secret, body));
}

/**
 * Verifies PagerDuty's `X-PagerDuty-Signature`: splits on commas, keeps `v1=` entries and accepts when
 * any equals the expected signature. At most 10 entries are considered.
 */
export function verifyPagerDutySignature(body: Buffer, header: string | undefined, secret: string): boolean {
  if (header === undefined) return false;
  const expected = hmacSha256Hex(secret, body);
  let matched = false;
  for (const part of header.split(',').slice(0, 10)) {
    const entry = part.trim();
    if (!entry.startsWith('v1=')) continue;
    // No early exit: every candidate is compared so timing does not reveal which one matched.
    if (safeEqual(entry.slice(3).toLowerCase(), expected)) matched = true;
  }
  return matched;
}
