/**
 * The console's login (SWITCHYARD_CONSOLE_TOKEN) on the real app: without the token every console route
 * but the health check answers 401 and changes nothing; `/?token=` sets a SameSite=Strict HttpOnly cookie
 * (a value derived from the token, not the token) and redirects; the cookie or a bearer token opens the page and the API. A console on an address other
 * machines can reach is a configuration error without a token (it stops start-up before anything runs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost, loadConfig, parseEnv } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

const TOKEN = 'console-token-0123456789abcdef';
let app: TestSwitchyard;

beforeAll(async () => {
  app = await startTestSwitchyard({ env: { SWITCHYARD_CONSOLE_TOKEN: TOKEN } });
});

afterAll(async () => {
  await app?.close();
});

const command = (headers: Record<string, string> = {}) =>
  fetch(`${app.baseUrl}/console/api/command`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ user: 'mallory', text: '/rollback production' }),
  });

describe('console login', () => {
  it('refuses the page and every API route without the token, and acts on nothing', async () => {
    const page = await fetch(`${app.baseUrl}/`, { redirect: 'manual' });
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('?token=');
    expect((await fetch(`${app.baseUrl}/?token=wrong-token-0123456789`, { redirect: 'manual' })).status).toBe(
      401,
    );
    const refused = await command();
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: string }).error).toBe('unauthorized');
    expect((await command({ authorization: 'Bearer nope' })).status).toBe(401);
    for (const path of ['/console/api/timeline?user=mallory', '/console/api/platform', '/console/events']) {
      expect((await fetch(`${app.baseUrl}${path}`)).status).toBe(401);
    }
    expect((await fetch(`${app.baseUrl}/console/health`)).status).toBe(200);
    // Nothing was planned: the timeline (read with the token) is empty.
    const timeline = await fetch(`${app.baseUrl}/console/api/timeline?user=mallory`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(((await timeline.json()) as { entries: unknown[] }).entries).toEqual([]);
  });

  it('logs in through /?token= with a SameSite=Strict HttpOnly cookie; the cookie or a bearer token opens the API', async () => {
    const login = await fetch(`${app.baseUrl}/?token=${TOKEN}`, { redirect: 'manual' });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/');
    const cookie = login.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^sy_console=/);
    // A value derived from the token, not the token: every port of this host gets the cookie.
    expect(cookie).not.toContain(TOKEN);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    const jar = cookie.split(';')[0] ?? '';

    const page = await fetch(`${app.baseUrl}/`, { headers: { cookie: jar } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const planned = await command({ cookie: jar });
    expect(planned.status).toBe(200);
    const withBearer = await fetch(`${app.baseUrl}/console/api/platform`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(withBearer.status).toBe(200);
  });

  it('a login link opened again with the cookie still redirects to `/`: the token never stays in the address bar', async () => {
    const login = await fetch(`${app.baseUrl}/?token=${TOKEN}`, { redirect: 'manual' });
    const jar = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    expect(jar).toMatch(/^sy_console=/);

    // The bookmarked or runbook link, opened by a browser that holds the cookie already.
    const again = await fetch(`${app.baseUrl}/?token=${TOKEN}`, {
      redirect: 'manual',
      headers: { cookie: jar },
    });
    await again.body?.cancel();
    expect({ status: again.status, location: again.headers.get('location') }).toEqual({
      status: 303,
      location: '/',
    });
    expect(again.headers.get('set-cookie') ?? '').toMatch(/^sy_console=.*HttpOnly; SameSite=Strict/);
    // With a bearer token too, and with the token among other parameters.
    const bearer = await fetch(`${app.baseUrl}/?x=1&token=${TOKEN}`, {
      redirect: 'manual',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    await bearer.body?.cancel();
    expect([bearer.status, bearer.headers.get('location')]).toEqual([303, '/']);
    // A wrong token is refused as without the cookie: never the page at that address.
    const wrong = await fetch(`${app.baseUrl}/?token=wrong-token-0123456789`, {
      redirect: 'manual',
      headers: { cookie: jar },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect(await wrong.text()).not.toContain('<html');
    // The page itself, at `/`, is still served to the cookie.
    const page = await fetch(`${app.baseUrl}/`, { headers: { cookie: jar } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    await page.body?.cancel();
  });

  it('with the token, a proxy in front of the console works: its forwarding headers are no reason to refuse', async () => {
    const proxied = {
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'https',
      'x-real-ip': '203.0.113.9',
    };
    const withToken = await fetch(`${app.baseUrl}/console/api/platform`, {
      headers: { authorization: `Bearer ${TOKEN}`, ...proxied },
    });
    expect(withToken.status).toBe(200);
    expect((await fetch(`${app.baseUrl}/console/api/platform`, { headers: proxied })).status).toBe(401);
  });
});

describe('console requests from other sites', () => {
  it('refuses a logged-in browser request made by another site (CSRF), a non-JSON body, and being framed', async () => {
    const login = await fetch(`${app.baseUrl}/?token=${TOKEN}`, { redirect: 'manual' });
    const jar = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const command = (headers: Record<string, string> = {}) =>
      fetch(`${app.baseUrl}/console/api/command`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ user: 'eve', text: '/rollback production' }),
      });
    // A page on another port of this host: SameSite ignores ports, so the browser sends the cookie.
    const fromPage = await command({ cookie: jar, origin: 'http://127.0.0.1:5173' });
    expect(fromPage.status).toBe(403);
    expect((await command({ cookie: jar, 'sec-fetch-site': 'same-site' })).status).toBe(403);
    const form = await fetch(`${app.baseUrl}/console/api/command`, {
      method: 'POST',
      headers: { cookie: jar, 'content-type': 'text/plain' },
      body: JSON.stringify({ user: 'eve', text: '/rollback production' }),
    });
    expect(form.status).toBe(415);
    const timeline = await fetch(`${app.baseUrl}/console/api/timeline?user=eve`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    // nothing eve sent was taken (the timeline is the channel's: other people's messages show too)
    const entries = ((await timeline.json()) as { entries: { author?: { name?: string } }[] }).entries;
    expect(entries.filter((e) => e.author?.name === 'eve')).toEqual([]);
    // The page itself, and the same request from the console's own origin, still work.
    const page = await fetch(`${app.baseUrl}/`, { headers: { cookie: jar } });
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const own = new URL(app.baseUrl);
    expect((await command({ cookie: jar, origin: own.origin, 'sec-fetch-site': 'same-origin' })).status).toBe(
      200,
    );
  });
});

describe('console on a reachable address', () => {
  it('refuses to start without a token, naming SWITCHYARD_CONSOLE_TOKEN', () => {
    let error: unknown;
    try {
      loadConfig({ HOST: '0.0.0.0' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/^SWITCHYARD_CONSOLE_TOKEN: got nothing/);
    expect((error as ConfigError).message).toContain('HOST=0.0.0.0');
    // With a token, or the console off, or on loopback, it starts.
    expect(() => loadConfig({ HOST: '0.0.0.0', SWITCHYARD_CONSOLE_TOKEN: TOKEN })).not.toThrow();
    expect(() => loadConfig({ HOST: '0.0.0.0', SWITCHYARD_CONSOLE: 'off' })).not.toThrow();
    expect(() => loadConfig({ HOST: '127.0.0.1' })).not.toThrow();
  });

  it('refuses a short token at start, naming the key', () => {
    expect(() => parseEnv({ SWITCHYARD_CONSOLE_TOKEN: 'short' })).toThrow(
      /SWITCHYARD_CONSOLE_TOKEN: got \(redacted\), expected a token of at least 16 characters/,
    );
  });

  it('knows which addresses are loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.5', 'switchyard.internal'])
      expect(isLoopbackHost(h)).toBe(false);
  });
});
