/**
 * src/http.ts: which Host names count as this machine's loopback (the console and
 * the local platform's API trust loopback callers only by that name: DNS rebinding).
 */
import { describe, expect, it } from 'vitest';
import { isLoopbackHostHeader } from '../../src/http.js';

describe('isLoopbackHostHeader', () => {
  it('takes localhost and its subdomains (which browsers resolve to loopback themselves)', () => {
    for (const host of [
      'localhost',
      'localhost:3000',
      'LOCALHOST:3000',
      'app.localhost:3000',
      'a.b.localhost',
      '[::1]:3000',
      '[::1]',
      '127.0.0.1:3000',
      '127.9.9.9',
    ])
      expect({ host, loopback: isLoopbackHostHeader(host) }).toEqual({ host, loopback: true });
  });

  it('refuses a name of another domain that merely contains "localhost" (a rebinding domain of its own)', () => {
    for (const host of [
      'localhost.evil.example:3000',
      'localhost-evil.example',
      'evillocalhost:3000',
      '127.0.0.1.evil.example',
    ])
      expect({ host, loopback: isLoopbackHostHeader(host) }).toEqual({ host, loopback: false });
  });
});
