/**
 * The console page in headless Chromium, where it meets the world: a reverse proxy that answers 502
 * while Switchyard is away (the page opens a new event stream itself, backing off, and shows what
 * happened meanwhile), a server that cannot be reached or refuses a command (said in the channel, the
 * typed text kept), a phone's narrow screen (no long word widens the page), a platform without simulated
 * pushes (no Push form), a deploy platform that cannot be read (the traffic panel says so, its last read
 * kept greyed and dated), a reader scrolled up to read a plan (not pulled down by others' messages), the
 * keyboard (its place survives the re-rendering of the message it is on), a tab without a name (asked for
 * one; nothing sent before), the channel's first line (when it began), /deployments rows (compact), a
 * restart (a switch confirmed before it shows in the new channel), and the traffic panel saying why a
 * domain answers 503 (building, build failed) and which standby deployment is reactivating.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Locator, Page, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSwitchyard, startSwitchyard } from '../../handlers/app.js';
import { ManualClock } from '../../src/clock.js';
import { fileConfigSchema, parseEnv } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import { UnkeyFakeServer } from '../fakes/unkey-server.js';
import { launchChromium } from '../support/browser.js';
import { ObservedClock } from '../support/observed-clock.js';
import { redisUrl, uniqueName } from '../support/redis.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

/** EventSource.readyState values, named (Node has no EventSource global to name them). */
const EventSourceState = { CONNECTING: 0, OPEN: 1, CLOSED: 2 } as const;

let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

async function post(base: string, path: string, body: unknown, token?: string): Promise<Response> {
  return await fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  });
}

/** The name the pages of these tests act as, unless a test says otherwise. */
const NAME = 'dana';

/**
 * A new page whose waits fail after 20 s naming what they waited for (before the test's own timeout,
 * which would name nothing). It acts as `name` (remembered in its browser, as the page's name prompt
 * leaves it), or asks for a name when `name` is null.
 */
async function newPage(
  options: Parameters<Browser['newPage']>[0],
  name: string | null = NAME,
): Promise<Page> {
  const p = await browser.newPage(options);
  p.setDefaultTimeout(20_000);
  if (name !== null)
    await p.addInitScript(
      `if (!localStorage.getItem('switchyard.user')) localStorage.setItem('switchyard.user', ${JSON.stringify(name)});`,
    );
  return p;
}

/** Waits until the page's header says its event stream is live. */
const live = (p: Page) => p.locator('#conn', { hasText: /^live$/ }).waitFor();

/** Opens the console in a new page and waits until its event stream is live. */
async function open(url: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const p = await newPage({ viewport });
  await p.goto(url);
  await live(p);
  return p;
}

/**
 * Types a command into the composer (with the keyboard when asked) and returns the new message of that
 * kind it gets (the page may show older ones from the timeline already), followed through its edits.
 */
async function send(p: Page, text: string, kind: string, keyboard = false): Promise<Locator> {
  const replies = p.locator(`.msg[data-kind="${kind}"]`);
  const before = await replies.count();
  if (keyboard) await p.keyboard.type(text);
  else await p.locator('#text').fill(text);
  await (keyboard ? p.keyboard : p.locator('#text')).press('Enter');
  const reply = replies.nth(before);
  await reply.waitFor();
  const entry = await reply.evaluate((m) => m.closest('.entry')?.id);
  return p.locator(`#${entry} .msg`);
}

/**
 * The little of the page these tests read in it (the project compiles without the DOM library). Used in
 * functions run in the page, as `(globalThis as unknown as InPage)`: a type only, erased before they go.
 */
interface InPage {
  readonly document: {
    readonly activeElement: InPageElement | null;
    readonly documentElement: { readonly scrollWidth: number };
    getElementById(id: string): InPageElement;
    querySelector(selector: string): InPageElement;
    querySelectorAll(selector: string): Iterable<InPageElement>;
  };
  /** The page's event streams, recorded by an init script. */
  readonly __streams: readonly { readonly readyState: number }[];
}
interface InPageElement {
  readonly id: string;
  readonly tagName: string;
  scrollTop: number;
  readonly scrollHeight: number;
  readonly clientHeight: number;
  readonly offsetTop: number;
  getAttribute(name: string): string | null;
  closest(selector: string): InPageElement | null;
  getBoundingClientRect(): { readonly right: number };
}

/** Where the keyboard is: `tag#id[data-action]`. */
const focused = (p: Page) =>
  p.evaluate(() => {
    const a = (globalThis as unknown as InPage).document.activeElement;
    if (!a) return 'none';
    const action = a.getAttribute('data-action');
    return `${a.tagName.toLowerCase()}${a.id ? `#${a.id}` : ''}${action ? `[${action}]` : ''}`;
  });

/**
 * A reverse proxy in front of Switchyard (nginx, Caddy, a tunnel): forwards everything, event streams
 * included. `down()` is Switchyard going away behind it: open connections end and every request is
 * answered 502 Bad Gateway, as a proxy answers for an upstream that refuses connections.
 */
interface Proxy {
  readonly url: string;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

async function startProxy(upstreamPort: number): Promise<Proxy> {
  let isDown = false;
  const open = new Set<ServerResponse>();
  const badGateway = (res: ServerResponse) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<h1>502 Bad Gateway</h1>');
  };
  const srv: Server = createServer((req, res) => {
    if (isDown) {
      req.resume();
      badGateway(res);
      return;
    }
    open.add(res);
    res.on('close', () => open.delete(res));
    const up = request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', () => badGateway(res));
    req.pipe(up);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    down() {
      isDown = true;
      for (const res of open) res.destroy();
    },
    up() {
      isDown = false;
    },
    async close() {
      srv.closeAllConnections();
      await new Promise((resolve) => srv.close(resolve));
    },
  };
}

describe('the event stream behind a reverse proxy', () => {
  const TOKEN = 'browser-page-console-token-0123456789';
  let app: TestSwitchyard;
  let proxy: Proxy;

  beforeAll(async () => {
    app = await startTestSwitchyard({ env: { SWITCHYARD_CONSOLE_TOKEN: TOKEN } });
    proxy = await startProxy(app.port);
  });

  afterAll(async () => {
    await proxy?.close();
    await app?.close();
  });

  it('after a 502 the page opens a new stream itself (1 s doubling to 30 s), then shows what it missed', async () => {
    const p = await newPage({ viewport: { width: 1280, height: 900 } });
    try {
      // The page's timers on a clock the test moves: each retry is seen being made, none waited for.
      await p.clock.install();
      // Counts the page's event streams (a retry is a new one, made when its timer fires).
      await p.addInitScript(`
        const Original = window.EventSource;
        window.__streams = [];
        window.EventSource = class extends Original {
          constructor(url, init) { super(url, init); window.__streams.push(this); }
        };
      `);
      await p.goto(`${proxy.url}/?token=${TOKEN}`);
      await live(p);
      const streams = () =>
        p.evaluate(() => (globalThis as unknown as InPage).__streams.map((s) => s.readyState));
      expect(await streams()).toEqual([EventSourceState.OPEN]);
      // From here on the page's time moves only when the test says so.
      await p.clock.pauseAt(Date.now() + 1000);

      // Switchyard goes away: the stream ends, the browser's own reconnection gets the proxy's 502, and
      // the browser gives that stream up for good (CLOSED).
      proxy.down();
      await p.waitForFunction(() =>
        (globalThis as unknown as InPage).__streams.every((s) => s.readyState === 2),
      );
      await p.getByText('disconnected, retrying…', { exact: true }).waitFor();

      // The page retries after 1 s, 2 s, 4 s… up to 30 s; each retry is answered 502 again.
      let made = 1;
      for (const wait of [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]) {
        await p.clock.runFor(wait - 1);
        expect({ wait, streams: (await streams()).length }).toEqual({ wait, streams: made });
        await p.clock.runFor(1);
        made += 1;
        expect({ wait, streams: (await streams()).length }).toEqual({ wait, streams: made });
        await p.waitForFunction(
          (n) => (globalThis as unknown as InPage).__streams[n - 1]?.readyState === 2,
          made,
        );
        // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
        expect(await p.locator('#conn').innerText()).toBe('disconnected, retrying…');
      }

      // While the page was away, someone ran a command (straight to Switchyard, not through the proxy).
      expect(
        (await post(app.baseUrl, '/console/api/command', { user: 'bob', text: 'missed while away' }, TOKEN))
          .status,
      ).toBe(200);
      proxy.up();
      await p.clock.runFor(30_000);
      await live(p);
      // The reconnection reloaded the timeline: what happened meanwhile shows.
      await p.locator('#timeline .entry', { hasText: 'missed while away' }).waitFor();
      expect((await streams()).filter((s) => s !== EventSourceState.CLOSED)).toEqual([EventSourceState.OPEN]);
      // And the new stream is live: a message posted now arrives over it.
      expect(
        (
          await post(
            proxy.url,
            '/console/api/command',
            { user: 'bob', text: 'said after the restart' },
            TOKEN,
          )
        ).status,
      ).toBe(200);
      await p.locator('#timeline .entry', { hasText: 'said after the restart' }).waitFor();
    } finally {
      await p.close();
    }
  });
});

describe('the channel', () => {
  let app: TestSwitchyard;

  beforeAll(async () => {
    app = await startTestSwitchyard();
  });

  afterAll(async () => {
    await app?.close();
  });

  it('a command or a click that cannot reach Switchyard says "Not sent", and the typed text comes back', async () => {
    const p = await open(app.baseUrl);
    try {
      const plan = await send(p, '/rollback production', 'confirmation');
      const unreachable = p
        .locator('.msg', { hasText: 'Not sent' })
        .filter({ hasText: 'Switchyard is unreachable' });

      // The network is gone (as for a server restarting or stopped): the request fails without an answer.
      await p.route('**/console/api/command', (route) => route.abort('connectionrefused'), { times: 1 });
      await p.locator('#text').fill('/rollback production dep_2mc5ty');
      await p.locator('#text').press('Enter');
      await unreachable.first().waitFor();
      expect(await p.locator('#text').inputValue()).toBe('/rollback production dep_2mc5ty');
      // Sent again once Switchyard answers: the box empties, the command runs.
      await p.locator('#text').press('Enter');
      await p.locator('#timeline .entry.user', { hasText: '/rollback production dep_2mc5ty' }).waitFor();
      expect(await p.locator('#text').inputValue()).toBe('');

      // A click on Confirm likewise.
      await p.route('**/console/api/action', (route) => route.abort('connectionrefused'), { times: 1 });
      await plan.getByRole('button', { name: 'Rollback to target version' }).click();
      await p.locator('dialog#confirm').waitFor({ state: 'visible' });
      await p.locator('#confirm-ok').click();
      await expect.poll(() => unreachable.count()).toBe(2);

      // Refused by Switchyard (here: a name it does not take) is said as well, and the text comes back too.
      await p.locator('#user').fill('a<b>');
      await p.locator('#user').dispatchEvent('change');
      await live(p);
      await p.locator('#text').fill('/deployments production');
      await p.locator('#text').press('Enter');
      await p
        .locator('.msg', { hasText: 'Not sent' })
        .filter({ hasText: 'expected letters, digits' })
        .waitFor();
      expect(await p.locator('#text').inputValue()).toBe('/deployments production');
    } finally {
      await p.close();
    }
  });

  it("a reader scrolled up to a plan is not pulled down by others' messages; a hint leads down", async () => {
    const p = await open(app.baseUrl, { width: 1280, height: 700 });
    try {
      await send(p, '/rollback production', 'confirmation');
      await send(p, '/deployments production', 'deployments');
      const scroll = () =>
        p.evaluate(() => {
          const tl = (globalThis as unknown as InPage).document.getElementById('timeline');
          return { top: tl.scrollTop, atBottom: tl.scrollHeight - tl.scrollTop - tl.clientHeight < 40 };
        });
      const newer = p.locator('#newer');
      // At the bottom, the channel follows new messages.
      expect(
        (await post(app.baseUrl, '/console/api/command', { user: 'bob', text: 'first line from bob' }))
          .status,
      ).toBe(200);
      await p.locator('#timeline .entry', { hasText: 'first line from bob' }).waitFor();
      expect((await scroll()).atBottom).toBe(true);
      expect(await newer.isVisible()).toBe(false);

      // The reader scrolls up to the plan.
      const top = await p.evaluate(() => {
        const { document } = globalThis as unknown as InPage;
        const tl = document.getElementById('timeline');
        const plan = document.querySelector('.msg[data-kind="confirmation"]');
        tl.scrollTop = plan.offsetTop - tl.offsetTop;
        return tl.scrollTop;
      });
      expect(top).toBeGreaterThan(0);
      expect((await scroll()).atBottom).toBe(false);
      expect(
        (
          await post(app.baseUrl, '/console/api/command', {
            user: 'bob',
            text: 'looking at the 5xx graph now',
          })
        ).status,
      ).toBe(200);
      await p.locator('#timeline .entry', { hasText: 'looking at the 5xx graph now' }).waitFor();
      expect(await scroll()).toEqual({ top, atBottom: false });
      expect(await newer.isVisible()).toBe(true);
      // The hint leads down, and goes.
      await newer.click();
      expect((await scroll()).atBottom).toBe(true);
      expect(await newer.isVisible()).toBe(false);

      // The reader's own command scrolls down to its answer, wherever they were.
      await p.evaluate(() => {
        (globalThis as unknown as InPage).document.getElementById('timeline').scrollTop = 0;
      });
      await send(p, '/deployments preview', 'deployments');
      expect((await scroll()).atBottom).toBe(true);
      expect(await newer.isVisible()).toBe(false);
    } finally {
      await p.close();
    }
  });

  it('a tab asks for a name first: no command or click goes out without one, and "you" is not taken', async () => {
    const p = await newPage({ viewport: { width: 1280, height: 900 } }, null);
    try {
      const sent: string[] = [];
      p.on('request', (r) => {
        if (r.method() === 'POST') sent.push(`${new URL(r.url()).pathname} ${r.postData() ?? ''}`);
      });
      await p.goto(app.baseUrl);
      await live(p);
      const prompt = p.locator('form#who');
      expect(await prompt.isVisible()).toBe(true);
      expect(await focused(p)).toBe('input#who-name');
      // Someone else's plan, with its buttons.
      expect(
        (await post(app.baseUrl, '/console/api/command', { user: 'bob', text: '/rollback production' }))
          .status,
      ).toBe(200);
      const plan = p.locator('.msg[data-kind="confirmation"]').last();
      await plan.waitFor();

      // A command before a name: not sent, kept in the box; the prompt asks for the name.
      await p.locator('#text').fill('/deployments production');
      await p.locator('#text').press('Enter');
      await p.locator('#who-problem', { hasText: 'Give your name first' }).waitFor();
      expect(await focused(p)).toBe('input#who-name');
      expect(await p.locator('#text').inputValue()).toBe('/deployments production');
      // A click likewise: no confirmation dialog, nothing sent.
      await p.locator('#who-problem').evaluate((e) => {
        e.textContent = '';
      });
      await plan.getByRole('button', { name: 'Rollback to target version' }).click();
      await p.locator('#who-problem', { hasText: 'Give your name first' }).waitFor();
      expect(await p.locator('dialog#confirm').isVisible()).toBe(false);
      // "you" is no name: it would read as whoever looks at the page.
      await p.locator('#who-name').fill('You');
      await p.locator('#who-name').press('Enter');
      await p.locator('#who-problem', { hasText: '"you" would read as everyone' }).waitFor();
      expect(sent).toEqual([]);

      await p.locator('#who-name').fill('erin');
      await p.locator('#who-name').press('Enter');
      await prompt.waitFor({ state: 'hidden' });
      expect(await p.locator('#user').inputValue()).toBe('erin');
      expect(await focused(p)).toBe('input#text');
      await p.locator('#text').press('Enter');
      // Sent as erin: the line shows under that name.
      await p
        .locator('#timeline .entry.user', { hasText: '/deployments production' })
        .filter({ hasText: 'erin' })
        .waitFor();
      expect(sent).toEqual([
        `/console/api/command ${JSON.stringify({ user: 'erin', text: '/deployments production' })}`,
      ]);
      // Remembered by this browser: the next visit asks nothing.
      await p.reload();
      await live(p);
      expect(await prompt.isVisible()).toBe(false);
      expect(await p.locator('#user').inputValue()).toBe('erin');
    } finally {
      await p.close();
    }
  });

  it('the channel begins with when Switchyard started: what was before is gone, plans and switches are kept', async () => {
    const p = await open(app.baseUrl);
    try {
      const { startedAt } = (await (await fetch(`${app.baseUrl}/console/api/timeline`)).json()) as {
        startedAt: number;
      };
      const at = await p.evaluate((t) => new Date(t).toLocaleTimeString(), startedAt);
      const said = `Switchyard started at ${at}; messages from before that are gone (the channel lives in its memory). Plans and switches are kept: /deployments <environment> shows what is running.`;
      const first = p.locator('#timeline > :first-child');
      // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
      expect(await first.innerText()).toBe(said);
      await send(p, '/deployments preview', 'deployments');
      // Still the first line once messages come, and after a reload.
      // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
      expect(await first.innerText()).toBe(said);
      await p.reload();
      await live(p);
      await p.locator('#timeline .msg[data-kind="deployments"]').first().waitFor();
      // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
      expect(await first.innerText()).toBe(said);
    } finally {
      await p.close();
    }
  });

  it('/deployments lists each deployment in a few lines, every label beside its value', async () => {
    const p = await open(app.baseUrl);
    try {
      const reply = await send(p, '/deployments production', 'deployments');
      const rows = reply.locator('.rows .row');
      expect(await rows.count()).toBeGreaterThanOrEqual(4);
      for (const row of await rows.all()) {
        const box = await row.boundingBox();
        // Six fields, markers and a button: about 110 px (each on a line of its own took 300).
        expect(box?.height).toBeLessThan(150);
        for (const [i, dt] of (await row.locator('dt').all()).entries()) {
          const label = await dt.boundingBox();
          const value = await row.locator('dd').nth(i).boundingBox();
          expect({ i, top: Math.round(value?.y ?? -1) }).toEqual({ i, top: Math.round(label?.y ?? -2) });
          expect(value?.x).toBeGreaterThan((label?.x ?? 0) + (label?.width ?? 0));
        }
      }
    } finally {
      await p.close();
    }
  });

  it('after confirming with the keyboard, the keyboard stays in the page (the composer), not on <body>', async () => {
    const p = await open(app.baseUrl);
    try {
      expect(await focused(p)).toBe('input#text');
      const confirmation = await send(p, '/rollback production', 'confirmation', true);
      // Shift+Tab back from the composer to the plan's button.
      const rollback = await confirmation
        .getByRole('button', { name: 'Rollback to target version' })
        .getAttribute('data-action');
      for (let i = 0; i < 6 && (await focused(p)) !== `button[${rollback}]`; i++)
        await p.keyboard.press('Shift+Tab');
      expect(await focused(p)).toBe(`button[${rollback}]`);
      await p.keyboard.press('Enter');
      await p.locator('dialog#confirm').waitFor({ state: 'visible' });
      expect(await focused(p)).toBe('button#confirm-deny'); // the safe default
      await p.keyboard.press('Tab');
      await p.keyboard.press('Enter');
      const progress = confirmation;
      await expect
        // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
        .poll(() => progress.innerText(), { timeout: 20_000 })
        .toContain('Traffic is on dep_3hd7xa');
      // The plan was re-rendered as its progress, without that button: the keyboard went to the composer.
      expect(await focused(p)).toBe('input#text');
      await p.keyboard.type('/deployments production');
      await p.keyboard.press('Enter');
      await p.locator('#timeline .entry.user', { hasText: '/deployments production' }).last().waitFor();
    } finally {
      await p.close();
    }
  });
});

describe('after a restart', () => {
  it('the channel says it began empty, and a switch confirmed before the restart shows in it as it runs', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sy-browser-restart-'));
    const namespace = uniqueName('sy');
    const start = (worker: 'on' | 'off') => {
      const env = parseEnv({
        PORT: '0',
        LOCAL_ROUTER_PORT: '0',
        REDIS_URL: redisUrl(),
        LOG_LEVEL: 'silent',
        SWITCHYARD_WORKER: worker,
      });
      const file = fileConfigSchema.parse({ local: { reactivationTime: '200ms', buildTime: '300ms' } });
      return startSwitchyard(
        { config: { env, file, platform: 'local' }, logger: silentLogger, dataDir, namespace },
        [],
      );
    };
    try {
      // Before the restart: no worker runs here, so the confirmed switch waits in the queue across it.
      const before = await start('off');
      try {
        const base = `http://127.0.0.1:${before.port}`;
        const planned = await post(base, '/console/api/command', {
          user: 'dana',
          text: '/rollback production',
        });
        const { messageId } = (await planned.json()) as { messageId: string };
        const entries = (
          (await (await fetch(`${base}/console/api/timeline?user=dana`)).json()) as {
            entries: { id: string; message?: { buttons: { actionId: string }[] } }[];
          }
        ).entries;
        const confirm = entries
          .find((e) => e.id === messageId)
          ?.message?.buttons.find((b) => b.actionId.startsWith('sy1:confirm:'));
        const clicked = await post(base, '/console/api/action', {
          user: 'dana',
          actionId: confirm?.actionId,
          messageId,
        });
        expect(((await clicked.json()) as { outcome: string }).outcome).toBe('enqueued');
      } finally {
        await before.stop();
      }

      const after = await start('on');
      const p = await open(`http://127.0.0.1:${after.port}/`);
      try {
        await p.locator('#timeline > #started', { hasText: 'Switchyard started at' }).waitFor();
        // The plan's message went with the old channel; the switch gets a message here, followed to its end.
        const progress = p.locator('.msg[data-kind="progress"]', {
          hasText: 'Asked for before Switchyard last started',
        });
        await expect
          // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
          .poll(() => progress.innerText(), { timeout: 20_000 })
          .toContain('Traffic is on dep_3hd7xa');
        expect(await p.locator('#timeline .msg').count()).toBe(1);
      } finally {
        await p.close();
        await after.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the keyboard on a message edited under it', () => {
  let app: TestSwitchyard;

  beforeAll(async () => {
    app = await startTestSwitchyard();
  });

  afterAll(async () => {
    await app?.close();
  });

  it('stays on the same button when a suggestion is edited to list another alert', async () => {
    expect(
      (await post(app.baseUrl, '/console/api/alert', { environment: 'production', title: 'Checkout 5xx' }))
        .status,
    ).toBe(202);
    const p = await open(app.baseUrl);
    try {
      const suggestion = p.locator('.msg[data-kind="confirmation"]', { hasText: 'Checkout 5xx' });
      const dismiss = suggestion.getByRole('button', { name: 'Dismiss' });
      const action = await dismiss.getAttribute('data-action');
      await dismiss.focus();
      expect(await focused(p)).toBe(`button[${action}]`);
      // Another alert on the same deployment joins the suggestion, which is edited (re-rendered) to list it.
      const grouped = await post(app.baseUrl, '/webhooks/alerts/generic', {
        title: 'Checkout latency p99 above 2s',
        environment: 'production',
        status: 'firing',
        fingerprint: 'checkout-latency',
      });
      expect(grouped.status).toBe(202);
      expect(
        ((await grouped.json()) as { alerts: { outcome: string }[] }).alerts.map((a) => a.outcome),
      ).toEqual(['grouped']);
      await suggestion.filter({ hasText: 'Checkout latency p99 above 2s' }).waitFor();
      // The focus is on the new rendering's Dismiss (the old button left the page).
      expect(await focused(p)).toBe(`button[${action}]`);
      expect(
        await p.evaluate(
          () => (globalThis as unknown as InPage).document.activeElement?.closest('#timeline') !== null,
        ),
      ).toBe(true);
    } finally {
      await p.close();
    }
  });
});

describe('a phone', () => {
  let app: TestSwitchyard;

  beforeAll(async () => {
    app = await startTestSwitchyard();
  });

  afterAll(async () => {
    await app?.close();
  });

  it('no long word (a branch name, a pasted link) makes the page wider than a 375 px screen', async () => {
    const p = await newPage({
      viewport: { width: 375, height: 667 },
      isMobile: true,
      hasTouch: true,
    });
    try {
      await p.goto(app.baseUrl);
      await live(p);
      const widths = () =>
        p.evaluate(() => {
          const { document } = globalThis as unknown as InPage;
          return {
            page: document.documentElement.scrollWidth,
            widest: Math.max(
              ...[...document.querySelectorAll('#timeline .entry')].map((e) =>
                Math.round(e.getBoundingClientRect().right),
              ),
            ),
          };
        });
      // A pushed branch with a long name: its notices repeat it.
      const branch = 'hotfix_checkout_pricing_api_timeouts_and_retries';
      expect(
        (await post(app.baseUrl, '/console/api/push', { environment: 'production', branch, user: 'you' }))
          .status,
      ).toBe(201);
      await p.locator('.msg', { hasText: branch }).first().waitFor();
      await send(p, '/rollback production', 'confirmation');
      expect(await widths()).toEqual({ page: 375, widest: expect.any(Number) });
      expect((await widths()).widest).toBeLessThanOrEqual(375);
      // A link pasted into the channel.
      const link =
        'https://grafana.acme.internal/d/checkout_5xx_by_route/checkout_overview?orgId=1&var_environment=production';
      await p.locator('#text').fill(link);
      await p.locator('#text').press('Enter');
      await p.locator('#timeline .entry.user', { hasText: 'grafana' }).waitFor();
      expect(await widths()).toEqual({ page: 375, widest: expect.any(Number) });
      expect((await widths()).widest).toBeLessThanOrEqual(375);
    } finally {
      await p.close();
    }
  });
});

describe('the traffic panel on the local platform', () => {
  const clock = new ObservedClock();
  const REACTIVATION_MS = 7777;
  let app: TestSwitchyard;
  beforeAll(async () => {
    app = await startTestSwitchyard({
      clock,
      file: { local: { buildTime: '3s', reactivationTime: `${REACTIVATION_MS}ms` } },
    });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('says why a domain answers 503 (building, build failed) and that a standby deployment is reactivating', async () => {
    const local = app.platform as LocalPlatform;
    const failed = await local.push({ environment: 'production', fail: true });
    await clock.advance(3000);
    await local.settle();
    const building = await local.push({ environment: 'production' });
    const reactivating = clock.sleepOf(REACTIVATION_MS);
    await local.rollback({ environment: 'production', targetId: 'dep_3hd7xa' });
    await reactivating;
    const p = await open(app.baseUrl);
    try {
      const env = p.locator('section.env[data-env="production"]');
      const served = (host: string) => env.locator(`tr[data-domain="${host}"] td`).nth(1);
      const own = (id: string) => `${id.replace(/_/g, '-')}.acme.localhost`;
      await served(own(building.id)).filter({ hasText: '503 (building)' }).waitFor();
      expect(await served(own(failed.id)).textContent()).toBe('503 (build failed)');
      expect(await served(own('dep_2mc5ty')).textContent()).toBe('dep_2mc5ty (standby)');
      const status = (id: string) => env.locator(`tr[data-deployment="${id}"] td`).nth(1);
      expect(await status('dep_3hd7xa').textContent()).toBe('reactivating');
      expect(await status('dep_2mc5ty').textContent()).toBe('standby');
    } finally {
      await p.close();
      await clock.advance(REACTIVATION_MS);
      await local.settle();
    }
  });
});

describe('on a platform without simulated pushes (Unkey)', () => {
  const KEY = 'unkey_3ZbrowserPageTestRootKey0123';
  const prodEnv = { project: 'acme', app: 'api', environment: 'production' } as const;
  let unkey: UnkeyFakeServer;
  /** Between Switchyard and Unkey: `down()` is Unkey away (a gateway in front of it answering 502). */
  let unkeyProxy: Proxy;
  let app: RunningSwitchyard;
  let dataDir: string;

  beforeAll(async () => {
    const clock = new ManualClock();
    unkey = await UnkeyFakeServer.start({
      clock,
      switchDelayMs: 0,
      rootKeys: { [KEY]: ['environment.*.read_deployment'] },
      customDomains: { 'acme/api': ['api.acme.com'] },
    });
    unkey.push({ ...prodEnv, branch: 'main' });
    await clock.advance(60_000);
    unkey.push({ ...prodEnv, branch: 'main' });
    unkeyProxy = await startProxy(Number(new URL(unkey.url).port));
    dataDir = mkdtempSync(join(tmpdir(), 'sy-browser-unkey-'));
    const env = parseEnv({
      PORT: '0',
      REDIS_URL: redisUrl(),
      LOG_LEVEL: 'silent',
      PLATFORM: 'unkey',
      UNKEY_ROOT_KEY: KEY,
      UNKEY_API_URL: unkeyProxy.url,
      SWITCHYARD_CONSOLE: 'on',
    });
    const file = fileConfigSchema.parse({
      platform: 'unkey',
      environments: { production: { unkey: prodEnv } },
    });
    app = await startSwitchyard(
      {
        config: { env, file, platform: 'unkey' },
        logger: silentLogger,
        dataDir,
        namespace: uniqueName('sy'),
      },
      [],
    );
  });

  afterAll(async () => {
    await app?.stop();
    await unkeyProxy?.close();
    await unkey?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the panel shows no Push form (the alert one stays)', async () => {
    const p = await newPage({ viewport: { width: 1280, height: 900 } });
    try {
      const panel = p.waitForResponse((r) => r.url().endsWith('/console/api/platform'));
      await p.goto(`http://127.0.0.1:${app.port}/`);
      const read = (await (await panel).json()) as {
        environments: {
          slug: string;
          current: string;
          domains: { hostname: string; routedTo: string | null }[];
        }[];
      };
      expect(read).toMatchObject({ platform: 'unkey', canPush: false, canAlert: true, canProbe: false });
      await p.locator('section.env[data-env="production"]').waitFor();
      expect(await p.locator('#push').isVisible()).toBe(false);
      expect(await p.locator('#alert').isVisible()).toBe(true);
      // Unkey cannot be probed: each domain shows where Unkey routes it, said as such, not "—".
      const production = read.environments.find((e) => e.slug === 'production');
      const custom = production?.domains.find((d) => d.hostname === 'api.acme.com');
      expect(custom?.routedTo).toBe(production?.current);
      expect(
        await p
          .locator('section.env[data-env="production"] tr[data-domain="api.acme.com"] td')
          .nth(1)
          .textContent(),
      ).toBe(`${production?.current} (as the platform routes it)`);
    } finally {
      await p.close();
    }
  });

  it('the panel says when Unkey cannot be read, keeps its last read greyed with its time, and clears that once a read works', async () => {
    const p = await newPage({ viewport: { width: 1280, height: 900 } });
    try {
      // The page's timers on a clock the test moves: each refresh of the panel is made when the test says.
      await p.clock.install();
      // Switchyard's time of each panel read that worked, which the panel gives as "as of" once reads fail.
      const readAt: number[] = [];
      p.on('response', async (r) => {
        if (r.url().endsWith('/console/api/platform') && r.status() === 200)
          readAt.push(((await r.json()) as { now: number }).now);
      });
      await p.goto(`http://127.0.0.1:${app.port}/`);
      await live(p);
      const env = p.locator('section.env[data-env="production"]');
      await env.waitFor();
      await p.clock.pauseAt(Date.now() + 1000);
      const note = p.locator('#panel-fault');
      expect(await note.isVisible()).toBe(false);

      unkeyProxy.down();
      await p.clock.runFor(5000);
      await note.filter({ hasText: 'Could not be read' }).waitFor();
      const asOf = await p.evaluate((t) => new Date(t).toLocaleTimeString(), Math.max(...readAt));
      // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
      expect(await note.innerText()).toBe(
        `Could not be read: the deploy platform answered with an error: platform_http (showing the last read, as of ${asOf}). Trying again every 5 s.`,
      );
      // The last read stays, greyed: what served the domains then, not said to be what serves them now.
      expect(await p.locator('#envs.stale').count()).toBe(1);
      expect(await env.locator('tr[data-deployment]').count()).toBeGreaterThan(0);

      unkeyProxy.up();
      await p.clock.runFor(5000);
      await note.waitFor({ state: 'hidden' });
      expect(await p.locator('#envs.stale').count()).toBe(0);
      await env.waitFor();
    } finally {
      unkeyProxy.up();
      await p.close();
    }
  });

  it('an answer to a read sent before the one shown, arriving late (a slow platform), is not shown over it', async () => {
    const p = await newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await p.clock.install();
      await p.goto(`http://127.0.0.1:${app.port}/`);
      await live(p);
      await p.locator('section.env[data-env="production"]').waitFor();
      await p.clock.pauseAt(Date.now() + 1000);
      // The next read (A) is held; the ones after it go to Switchyard.
      let hold: (route: Route) => void = () => undefined;
      const held = new Promise<Route>((resolve) => {
        hold = resolve;
      });
      let first = true;
      await p.route('**/console/api/platform', async (route) => {
        if (first) {
          first = false;
          hold(route);
        } else await route.continue();
      });
      await p.clock.runFor(5000);
      const a = await held;
      const answered = p.waitForResponse(
        (r) => r.url().endsWith('/console/api/platform') && r.status() === 200,
      );
      await p.clock.runFor(5000);
      const b = (await (await answered).json()) as { now: number };
      // A is answered now, after B: a read that worked, an hour older than B's.
      const late = p.waitForEvent('requestfinished', (r) => r === a.request());
      await a.fulfill({ json: { ...b, now: b.now - 3_600_000 } });
      await late;
      // The next read fails: the panel keeps B's read, so "as of" is B's time, not A's.
      await p.unroute('**/console/api/platform');
      await p.route('**/console/api/platform', (route) =>
        route.fulfill({ status: 503, json: { error: 'platform_timeout', reason: 'too slow' } }),
      );
      await p.clock.runFor(5000);
      const note = p.locator('#panel-fault', { hasText: 'Could not be read' });
      await note.waitFor();
      const asOf = await p.evaluate((t) => new Date(t).toLocaleTimeString(), b.now);
      // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
      expect(await note.innerText()).toBe(
        `Could not be read: too slow (showing the last read, as of ${asOf}). Trying again every 5 s.`,
      );
    } finally {
      await p.close();
    }
  });

  it('/deployments with more deployments than Switchyard reads says the platform has more', async () => {
    // 510 deployments: the adapter reads the newest 500 (its maxDeployments) and says it stopped there.
    for (let i = 0; i < 508; i++) unkey.push({ ...prodEnv, branch: 'main' });
    const p = await open(`http://127.0.0.1:${app.port}/`);
    try {
      const reply = await send(p, '/deployments production', 'deployments');
      await reply.getByText('the platform has more than the 500 read').waitFor();
      expect(await reply.getByText('older deployments not shown', { exact: false }).count()).toBe(0);
    } finally {
      await p.close();
    }
  });
});
