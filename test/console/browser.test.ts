/**
 * The console in Debian's headless Chromium (playwright-core): type `/rollback production`, see the
 * confirmation with the domains, confirm, watch progress reach "traffic switched", and see the domain
 * panel show the target deployment (read through the real router).
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

const CHROMIUM = '/usr/bin/chromium';
let app: TestSwitchyard;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} missing: apt-get install -y chromium (.ci/run does)`);
  app = await startTestSwitchyard();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
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
