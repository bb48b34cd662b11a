/**
 * The console in Debian's headless Chromium (playwright-core): type `/rollback production`, see the
 * confirmation with the domains, confirm, watch progress reach "traffic switched", and see the domain
 * panel show the target deployment (read through the real router). Hostile text (a commit message, a
 * branch, an alert title, typed text) is rendered as text; an entry that arrives while the page loads
 * its timeline is not wiped by the load.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../support/browser.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

let app: TestSwitchyard;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  app = await startTestSwitchyard();
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

describe('console in a real browser', () => {
  it('rolls production back from the composer and shows traffic on the target', async () => {
    await page.goto(app.baseUrl);
    await page.getByText('live', { exact: true }).waitFor();
    await page.locator('#user').fill('alice');
    await page.locator('#user').dispatchEvent('change');
    await page.getByText('live', { exact: true }).waitFor();
    // the panel shows the current deployment serving the custom domain
    await expect
      .poll(() =>
        page.locator('tr[data-domain="shop.localhost"] td[data-served-by]').getAttribute('data-served-by'),
      )
      .toBe('dep_4kq9wz');

    await page.locator('#text').fill('/rollback production');
    await page.locator('#text').press('Enter');
    const confirmation = page.locator('.msg[data-kind="confirmation"]').last();
    await confirmation.waitFor();
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
    const text = await confirmation.innerText();
    expect(text).toContain('dep_4kq9wz');
    expect(text).toContain('dep_3hd7xa');
    for (const domain of [
      'shop.localhost',
      'www.shop.localhost',
      'production.acme.localhost',
      'main.acme.localhost',
    ]) {
      expect(text).toContain(domain);
    }

    await confirmation.getByRole('button', { name: 'Rollback to target version' }).click();
    // Slack-style confirm dialog, keyboard reachable
    await page.locator('dialog#confirm').waitFor({ state: 'visible' });
    await page.locator('#confirm-ok').click();

    const progress = page.locator('.msg[data-kind="progress"]').last();
    await progress.waitFor();
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
    await expect.poll(() => progress.innerText(), { timeout: 20_000 }).toContain('Traffic is on dep_3hd7xa');
    await expect
      .poll(
        () =>
          page.locator('tr[data-domain="shop.localhost"] td[data-served-by]').getAttribute('data-served-by'),
        {
          timeout: 10_000,
        },
      )
      .toBe('dep_3hd7xa');
    await expect.poll(() => page.locator('section.env[data-env="production"] .banner').count()).toBe(1);
  });

  it('answers a bad command with usage only the typist sees', async () => {
    await page.locator('#text').fill('/rollback');
    await page.locator('#text').press('Enter');
    const usage = page.locator('.msg[data-kind="usage"]').last();
    await usage.waitFor();
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
    expect(await usage.innerText()).toContain('production');
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the rendered text a user reads
    expect(await usage.innerText()).toContain('Only visible to you');
  });
});

describe('console page robustness', () => {
  // A Switchyard of its own: production untouched by the rollback above, so an alert gets a suggestion.
  let fresh: TestSwitchyard;
  beforeAll(async () => {
    fresh = await startTestSwitchyard();
  });
  afterAll(async () => {
    await fresh?.close();
  });

  async function post(
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${fresh.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('renders hostile text (commit message, branch, alert title, typed text) as text', async () => {
    const hostile = (tag: string) =>
      `<img src=x onerror="window.__xss=(window.__xss||[]).concat('${tag}')"><b id="inj-${tag}">x</b>`;
    const p = await browser.newPage();
    try {
      // The page acts as carol (the name its prompt remembers).
      await p.addInitScript(`localStorage.setItem('switchyard.user', 'carol')`);
      await p.goto(fresh.baseUrl);
      await p.getByText('live', { exact: true }).waitFor();
      const pushed = await post('/console/api/push', {
        environment: 'production',
        branch: hostile('branch').slice(0, 100),
        message: hostile('commit'),
      });
      expect(pushed.status).toBe(201);
      const alert = await post('/console/api/alert', { environment: 'production', title: hostile('title') });
      expect(alert.json.outcome).toBe('suggested');
      // As the page's user: a refused command's line is its sender's alone.
      for (const text of [
        `/deployments production ${hostile('cmd')}`,
        hostile('chat'),
        `/rollback ${hostile('env')}`,
      ])
        expect((await post('/console/api/command', { user: 'carol', text })).status).toBe(200);
      // Live (over the event stream), then again from the timeline after a reload.
      for (const pass of ['live', 'reloaded']) {
        if (pass === 'reloaded') {
          await p.reload();
          await p.getByText('live', { exact: true }).waitFor();
        }
        for (const tag of ['title', 'cmd', 'chat', 'env'])
          await p
            .locator('#timeline .entry', { hasText: `inj-${tag}` })
            .first()
            .waitFor();
        await p.locator('#envs', { hasText: 'inj-branch' }).waitFor();
        expect({ pass, xss: await p.evaluate(() => (globalThis as { __xss?: string[] }).__xss) }).toEqual({
          pass,
          xss: undefined,
        });
        expect(await p.locator('[id^="inj-"]').count()).toBe(0);
        expect(await p.locator('#timeline img, #envs img').count()).toBe(0);
      }
    } finally {
      await p.close();
    }
  });

  it('an entry that arrives while the page loads its timeline is not wiped by the load', async () => {
    const p = await browser.newPage();
    try {
      // Records what the page's event stream delivered (the page's own listeners run right after this one).
      await p.addInitScript(`
        const Original = window.EventSource;
        window.__streamed = [];
        window.EventSource = class extends Original {
          constructor(url, init) {
            super(url, init);
            this.addEventListener('entry', (ev) => window.__streamed.push(String(JSON.parse(ev.data).text)));
          }
        };
      `);
      expect(
        (await post('/console/api/command', { user: 'bob', text: 'posted before the load' })).status,
      ).toBe(200);
      // Hold the page's first timeline load: its answer is taken now, delivered once released.
      let held: () => void = () => undefined;
      const loading = new Promise<void>((resolve) => {
        held = resolve;
      });
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      await p.route(
        '**/console/api/timeline*',
        async (route) => {
          const response = await route.fetch();
          held();
          await released;
          await route.fulfill({ response });
        },
        { times: 1 },
      );
      await p.goto(fresh.baseUrl);
      await loading;
      expect(
        (await post('/console/api/command', { user: 'bob', text: 'posted during the load' })).status,
      ).toBe(200);
      await p.waitForFunction(() =>
        (globalThis as unknown as { __streamed: string[] }).__streamed.includes('posted during the load'),
      );
      release();
      // Once the (older) timeline is shown, the entry that came over the stream meanwhile is there too.
      const timeline = p.locator('#timeline');
      await timeline.getByText('posted before the load', { exact: true }).waitFor();
      expect(await timeline.getByText('posted during the load', { exact: true }).count()).toBe(1);
    } finally {
      await p.close();
    }
  });
});
