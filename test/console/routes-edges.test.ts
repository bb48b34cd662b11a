/**
 * handlers/console/routes.ts: behaviour of the console's HTTP routes that no test pinned down (the
 * login cookie: found among other cookies, its value not the token, valid across a restart, Secure
 * over TLS; the 32 KiB body limit, an empty body, who an event stream carries ephemeral entries to,
 * when the timeline's channel began,
 * command errors counted, a click's follow-ups: approval view yielding to the job's progress, an
 * ephemeral or planned post; a click's fault said to the clicker, as a command's). Each test runs the
 * routes on their own HTTP server with stubbed chat, so it stays fast and deterministic.
 */
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { CONSOLE_COOKIE, type ConsoleDeps, registerConsole } from '../../handlers/console/routes.js';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import type { ChatReply, ClickReply } from '../../src/chat.js';
import { RefusalCode } from '../../src/domain/result.js';
import { SwitchyardError } from '../../src/errors.js';
import { HttpServer } from '../../src/http.js';
import { createMetrics } from '../../src/metrics.js';
import { refusalView } from '../../src/views/model.js';
import { CapturedLog } from '../support/captured-log.js';
import { progressFixture } from '../support/progress.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const TOKEN = 'console-token-0123456789abcdef';
/** Test-only certificates for 127.0.0.1 (test/fixtures/tls/README.md). */
const TLS_DIR = new URL('../fixtures/tls/', import.meta.url);
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const view = (message: string) => refusalView({ code: RefusalCode.invalidInput, message });

async function rig(over: Partial<ConsoleDeps> = {}) {
  const surface = new ConsoleSurface();
  const http = new HttpServer();
  const routes = registerConsole(http, {
    surface,
    chat: {} as never,
    flow: {} as never,
    platform: { name: 'fake' } as never,
    ...over,
  });
  const port = await http.listen(0);
  closers.push(async () => {
    routes.close();
    await http.close(50);
  });
  const base = `http://127.0.0.1:${port}`;
  const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  return { surface, http, port, base, post };
}

/** Opens an event stream over a raw socket; resolves once its `hello` arrived. */
async function openStream(
  port: number,
  user: string,
): Promise<{ received: () => string; until: (s: string) => Promise<void> }> {
  const client: Socket = connect(port, '127.0.0.1');
  closers.push(() => client.destroy());
  let text = '';
  const waiters: { s: string; resolve: () => void }[] = [];
  client.on('data', (d: Buffer) => {
    text += d.toString();
    for (const w of [...waiters]) if (text.includes(w.s)) w.resolve();
  });
  const until = (s: string) =>
    new Promise<void>((resolve) => {
      if (text.includes(s)) resolve();
      else waiters.push({ s, resolve });
    });
  client.write(`GET /console/events?user=${user} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await until('event: hello');
  return { received: () => text, until };
}

/** Logs in with `/?token=` at `base`: the whole Set-Cookie header and the `name=value` a browser sends back. */
async function logIn(base: string, token = TOKEN): Promise<{ header: string; jar: string }> {
  const res = await fetch(`${base}/?token=${encodeURIComponent(token)}`, { redirect: 'manual' });
  expect(res.status).toBe(303);
  const header = res.headers.get('set-cookie') ?? '';
  return { header, jar: header.split(';')[0] ?? '' };
}

describe('console login cookie', () => {
  it('finds the console cookie among the other cookies of the host, and takes no other cookie as the login', async () => {
    const { base } = await rig({ token: TOKEN });
    const { jar } = await logIn(base);
    const value = jar.slice(`${CONSOLE_COOKIE}=`.length);
    const timeline = (cookie: string) =>
      fetch(`${base}/console/api/timeline?user=alice`, { headers: { cookie } });
    // Other apps on localhost set cookies too; the browser sends them all, the console's not first.
    const mixed = await timeline(`theme=dark; ${jar}; sid=abc`);
    expect(mixed.status).toBe(200);
    // The login's value under another cookie's name is no login.
    const other = await timeline(`session=${value}`);
    expect(other.status).toBe(401);
  });

  it('holds a value derived from the token, never the token: other services on this host get the cookie', async () => {
    // Browsers send a host's cookies to all its ports (SameSite ignores ports): a dev server on
    // localhost:5173 received the console token itself, which is also the API's bearer token.
    const { base } = await rig({ token: TOKEN });
    const { header, jar } = await logIn(base);
    expect(header).toMatch(
      new RegExp(`^${CONSOLE_COOKIE}=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/$`),
    );
    expect(header).not.toContain(TOKEN);
    expect(header).not.toContain(encodeURIComponent(TOKEN));
    const value = jar.slice(`${CONSOLE_COOKIE}=`.length);
    // The cookie's value is no bearer token, and the token is no cookie value.
    const timeline = (headers: Record<string, string>) =>
      fetch(`${base}/console/api/timeline?user=alice`, { headers });
    expect((await timeline({ cookie: jar })).status).toBe(200);
    expect((await timeline({ authorization: `Bearer ${value}` })).status).toBe(401);
    expect((await timeline({ cookie: `${CONSOLE_COOKIE}=${encodeURIComponent(TOKEN)}` })).status).toBe(401);
    expect((await fetch(`${base}/`, { headers: { cookie: `${CONSOLE_COOKIE}=${TOKEN}` } })).status).toBe(401);
  });

  it('stays valid across a restart of the bot with the same token, not with a new token', async () => {
    const before = await rig({ token: TOKEN });
    const { jar } = await logIn(before.base);
    // A restart: the routes registered again, with the same token, on another server.
    const after = await rig({ token: TOKEN });
    const page = await fetch(`${after.base}/`, { headers: { cookie: jar } });
    expect(page.status).toBe(200);
    // A new token ends every session.
    const rotated = await rig({ token: `${TOKEN}-rotated` });
    expect((await fetch(`${rotated.base}/`, { headers: { cookie: jar } })).status).toBe(401);
  });

  it('is marked Secure when the login came over TLS, not over plain HTTP nor for a forged X-Forwarded-Proto', async () => {
    const { http, base } = await rig({ token: TOKEN });
    // Plain HTTP, even with a header saying otherwise (anyone can send it; no proxy is trusted).
    expect((await logIn(base)).header).not.toContain('Secure');
    const forged = await fetch(`${base}/?token=${TOKEN}`, {
      redirect: 'manual',
      headers: { 'x-forwarded-proto': 'https' },
    });
    expect(forged.headers.get('set-cookie') ?? '').not.toContain('Secure');
    // The same server reached over TLS (a TLS listener handing its connections to it).
    const front = createTlsServer(
      {
        key: readFileSync(new URL('server-key.pem', TLS_DIR)),
        cert: readFileSync(new URL('server.pem', TLS_DIR)),
      },
      (socket) => http.server.emit('connection', socket),
    );
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => front.close(resolve)));
    const { port } = front.address() as AddressInfo;
    const header = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: `/?token=${TOKEN}`,
          ca: readFileSync(new URL('ca.pem', TLS_DIR)),
          agent: false,
        },
        (res) => {
          res.resume();
          resolve(String(res.headers['set-cookie'] ?? ''));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(header).toMatch(
      new RegExp(`^${CONSOLE_COOKIE}=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=/; Secure$`),
    );
  });
});

describe('console JSON bodies', () => {
  it('refuses a body over 32 KiB with 413 naming the limit, and posts nothing', async () => {
    const { surface, post } = await rig({ chat: { command: async () => ({}) } as never });
    const big = JSON.stringify({ user: 'alice', text: 'x'.repeat(40 * 1024) });
    const res = await post('/console/api/command', big);
    expect(res.status).toBe(413);
    expect(res.json).toMatchObject({
      error: 'invalid_body',
      message: 'request body larger than 32768 bytes',
    });
    expect(surface.timeline('alice')).toEqual([]);
  });

  it('an empty body is read as {}: the answer names the missing field, not "expected JSON"', async () => {
    const { post } = await rig();
    const res = await post('/console/api/command', '');
    expect(res.status).toBe(400);
    expect(String(res.json.message)).toMatch(/^user: /);
  });
});

describe('console event stream', () => {
  it("never carries an entry visible to someone else (another person's ephemeral reply)", async () => {
    const { surface, port } = await rig();
    const bob = await openStream(port, 'bob');
    surface.postView(view('only for alice'), { visibleTo: 'alice' });
    surface.postUser('carol', 'for everyone');
    await bob.until('for everyone');
    expect(bob.received()).not.toContain('only for alice');
    // alice's own stream does carry hers
    const alice = await openStream(port, 'alice');
    surface.postView(view('again only for alice'), { visibleTo: 'alice' });
    await alice.until('again only for alice');
  });
});

describe('console timeline', () => {
  it('says when the channel began and how many entries it dropped: the page says both above the entries', async () => {
    const { surface, base } = await rig();
    surface.postUser('alice', 'hello');
    const res = await fetch(`${base}/console/api/timeline?user=alice`);
    expect(await res.json()).toEqual({
      entries: [expect.objectContaining({ text: 'hello' })],
      startedAt: surface.startedAt,
      dropped: 0,
      kept: 500,
    });
  });
});

describe('console commands', () => {
  it('counts a command that failed (Redis unreachable) as an error in /metrics', async () => {
    const metrics = createMetrics();
    const { post } = await rig({
      metrics,
      chat: {
        command: async () => {
          throw new Error('Connection is closed.');
        },
      } as never,
    });
    const res = await post(
      '/console/api/command',
      JSON.stringify({ user: 'alice', text: '/rollback production' }),
    );
    // Not sent: the page says so and keeps the text for another try.
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('redis_unavailable');
    const counted = await metrics.commands.get();
    expect(counted.values).toEqual([
      expect.objectContaining({
        labels: { surface: 'console', command: 'rollback', outcome: 'error' },
        value: 1,
      }),
    ]);
  });
});

describe('console command faults', () => {
  it('a deploy platform that cannot be reached is said to the sender alone, in words and with its code, not "internal error"', async () => {
    const { surface, post } = await rig({
      chat: {
        command: async () => {
          throw new SwitchyardError(
            'platform_unavailable',
            'GET http://127.0.0.1:9/v2/x: connect ECONNREFUSED',
            {
              retry: true,
            },
          );
        },
      } as never,
    });
    const res = await post(
      '/console/api/command',
      JSON.stringify({ user: 'alice', text: '/deployments production' }),
    );
    expect(res.status).toBe(200);
    expect(surface.timeline('bob')).toEqual([]);
    const [typed, answer] = surface.timeline('alice');
    expect(typed?.visibleTo).toBe('alice');
    expect(answer?.visibleTo).toBe('alice');
    expect(JSON.stringify(answer?.message)).toContain(
      'Switchyard could not run /deployments (the deploy platform could not be reached: platform_unavailable). It may work if you try again in a moment.',
    );
  });

  it('a fault of another kind is said with its code, and nothing of its message', async () => {
    const { surface, post } = await rig({
      chat: {
        command: async () => {
          throw new Error('secret internals');
        },
      } as never,
    });
    const res = await post(
      '/console/api/command',
      JSON.stringify({ user: 'alice', text: '/rollback production' }),
    );
    expect(res.status).toBe(200);
    const answer = JSON.stringify(surface.timeline('alice').at(-1)?.message);
    expect(answer).toContain('Switchyard could not run /rollback (internal).');
    expect(answer).not.toContain('secret');
  });
});

describe('console clicks', () => {
  const click = (post: Awaited<ReturnType<typeof rig>>['post'], messageId: string) =>
    post(
      '/console/api/action',
      JSON.stringify({ user: 'bob', actionId: 'sy1:confirm:plan_0123abcd', messageId }),
    );

  it('the "waiting for a second person" view yields to the progress of the job the approval made', async () => {
    const reply: ClickReply = {
      outcome: 'awaiting_approval',
      approvalJobId: 'sw_1',
      update: view('Waiting for a second person to approve.'),
    };
    const { surface, post } = await rig({ chat: { click: async () => reply } as never });
    const ref = surface.postView(view('plan'));
    // Another person approved on another replica: the job already shows its progress here.
    await surface.report(
      progressFixture({
        jobId: 'sw_1',
        steps: [{ step: 'reactivating', state: 'running', startedAt: T0 }],
        updatedAt: T0,
      }),
      [ref],
    );
    expect((await click(post, ref.messageId)).status).toBe(200);
    expect(surface.get(ref.messageId)?.message?.kind).toBe('progress');
  });

  it("posts a click's ephemeral reply for the clicker only", async () => {
    const reply: ClickReply = {
      outcome: 'planned',
      post: { view: view('a fresh plan, for bob'), visibility: 'ephemeral' } satisfies ChatReply,
    };
    const { surface, post } = await rig({ chat: { click: async () => reply } as never });
    const ref = surface.postView(view('plan'));
    expect((await click(post, ref.messageId)).status).toBe(200);
    const posted = surface.timeline('bob').at(-1);
    expect(JSON.stringify(posted?.message)).toContain('a fresh plan, for bob');
    expect(posted?.visibleTo).toBe('bob');
    expect(surface.timeline('alice').map((e) => e.id)).toEqual([ref.messageId]);
  });

  it("attaches a click's posted plan to its plan, so the switch's progress edits it", async () => {
    const attached: { planId: string; messageId: string }[] = [];
    const reply: ClickReply = {
      outcome: 'planned',
      post: { view: view('a fresh plan'), visibility: 'channel', planId: 'plan_fresh' },
    };
    const { surface, post } = await rig({
      chat: {
        click: async () => reply,
        attach: async (planId: string, ref: { messageId: string }) => {
          attached.push({ planId, messageId: ref.messageId });
          return undefined;
        },
      } as never,
    });
    const ref = surface.postView(view('plan'));
    expect((await click(post, ref.messageId)).status).toBe(200);
    const fresh = surface.timeline().at(-1);
    expect(attached).toEqual([{ planId: 'plan_fresh', messageId: fresh?.id }]);
  });
});

describe('console click faults', () => {
  const click = (post: Awaited<ReturnType<typeof rig>>['post'], messageId: string) =>
    post(
      '/console/api/action',
      JSON.stringify({ user: 'alice', actionId: 'sy1:confirm:plan_0123456789abcdef01234567', messageId }),
    );
  const failing = (e: Error) =>
    ({
      click: async () => {
        throw e;
      },
    }) as never;

  it('a deploy platform that cannot be reached is said to the clicker alone, in words and with its code, counted as an error', async () => {
    const metrics = createMetrics();
    const log = new CapturedLog();
    const { surface, post } = await rig({
      metrics,
      logger: log.logger,
      chat: failing(
        new SwitchyardError('platform_unavailable', 'POST http://127.0.0.1:9/v2/x: connect ECONNREFUSED', {
          retry: true,
        }),
      ),
    });
    const plan = surface.postView(view('plan'));
    const before = surface.get(plan.messageId);
    const res = await click(post, plan.messageId);
    // Answered, not "Not sent · internal error": the page has nothing to say, the channel says it.
    expect(res).toEqual({ status: 200, json: { ok: true, outcome: 'error' } });
    const answer = surface.timeline('alice').at(-1);
    expect(answer?.visibleTo).toBe('alice');
    expect(JSON.stringify(answer?.message)).toContain(
      'Switchyard could not handle this click (the deploy platform could not be reached: platform_unavailable). It may work if you try again in a moment.',
    );
    // Nobody else sees it, and the message clicked is as it was.
    expect(surface.timeline('bob').map((e) => e.id)).toEqual([plan.messageId]);
    expect(surface.get(plan.messageId)).toBe(before);
    expect((await metrics.clicks.get()).values).toEqual([
      expect.objectContaining({
        labels: { surface: 'console', action: 'confirm', outcome: 'error' },
        value: 1,
      }),
    ]);
    // An outage of the platform: a WARN with its code, no ERROR with a stack.
    expect(log.lines.map((l) => ({ level: l.level, msg: l.msg, code: l.code, err: l.err }))).toEqual([
      {
        level: 40,
        msg: 'console click failed: the deploy platform could not be reached: platform_unavailable',
        code: 'platform_unavailable',
        err: undefined,
      },
    ]);
  });

  it('Redis unreachable answers 503 (the page says "Not sent", to click again), posts nothing, and is counted as an error', async () => {
    const metrics = createMetrics();
    const { surface, post } = await rig({ metrics, chat: failing(new Error('Connection is closed.')) });
    const plan = surface.postView(view('plan'));
    const res = await click(post, plan.messageId);
    expect(res.status).toBe(503);
    expect(res.json.error).toBe('redis_unavailable');
    expect(surface.timeline('alice').map((e) => e.id)).toEqual([plan.messageId]);
    expect((await metrics.clicks.get()).values).toEqual([
      expect.objectContaining({
        labels: { surface: 'console', action: 'confirm', outcome: 'error' },
        value: 1,
      }),
    ]);
  });
});
