/**
 * The fake Slack checks the Block Kit limits Slack documents for every interactive element, not only
 * buttons inside `actions` blocks: section `accessory` buttons (text ≤ 75, action_id ≤ 255, value ≤
 * 2000, url ≤ 3000), action_id uniqueness across the message, confirmation dialogs (title ≤ 100, text ≤
 * 300, confirm/deny ≤ 30), and context text elements (≤ 3000). Each limit is accepted at the boundary
 * and refused one past it, and a refused message answers `invalid_blocks` on the wire.
 */
import { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { blockProblems, FakeSlack } from '../fakes/slack/server.js';

const x = (n: number) => 'x'.repeat(n);
const plain = (text: string) => ({ type: 'plain_text', text });

function button(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'button', text: plain('Rollback'), action_id: 'sy1:confirm:p1', value: 'v', ...over };
}

function dialog(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    title: plain('Roll back?'),
    text: plain('Sure?'),
    confirm: plain('Yes'),
    deny: plain('No'),
    ...over,
  };
}

const row = (accessory: unknown) => [{ type: 'section', text: { type: 'mrkdwn', text: 'row' }, accessory }];
const actions = (...elements: unknown[]) => [{ type: 'actions', elements }];

describe('fake Slack: section accessory buttons', () => {
  it.each([
    ['text', { text: plain(x(75)) }, { text: plain(x(76)) }, '/blocks/0/accessory/text/text'],
    ['action_id', { action_id: x(255) }, { action_id: x(256) }, '/blocks/0/accessory/action_id'],
    ['value', { value: x(2000) }, { value: x(2001) }, '/blocks/0/accessory/value'],
    ['url', { url: `https://e.x/${x(2988)}` }, { url: `https://e.x/${x(2989)}` }, '/blocks/0/accessory/url'],
  ] as const)('%s: at the limit passes, one past it is refused', (_field, ok, bad, pointer) => {
    expect(blockProblems(row(button(ok)))).toBeNull();
    expect(blockProblems(row(button(bad)))).toContain(`[json-pointer:${pointer}]`);
  });

  it('refuses a button label that is not plain_text, and a style other than primary/danger', () => {
    expect(blockProblems(row(button({ text: { type: 'mrkdwn', text: '*Go*' } })))).toMatch(/plain_text/);
    expect(blockProblems(row(button({ style: 'green' })))).toMatch(/primary or danger/);
  });
});

describe('fake Slack: action_id uniqueness across the message', () => {
  it('refuses the same action_id on an accessory and in an actions block', () => {
    const btn = button({ action_id: 'same' });
    expect(blockProblems([...row(btn), ...actions(btn)])).toMatch(
      /duplicate action_id \[json-pointer:\/blocks\/1\/elements\/0/,
    );
  });

  it('refuses the same action_id on two accessories', () => {
    const btn = button({ action_id: 'same' });
    expect(blockProblems([...row(btn), ...row(btn)])).toMatch(/duplicate action_id/);
  });

  it('accepts distinct action_ids everywhere', () => {
    expect(
      blockProblems([...row(button({ action_id: 'a' })), ...actions(button({ action_id: 'b' }))]),
    ).toBeNull();
  });
});

describe('fake Slack: confirmation dialogs', () => {
  it.each([
    ['title', 100],
    ['text', 300],
    ['confirm', 30],
    ['deny', 30],
  ] as const)('%s: %i characters pass, one more is refused (actions and accessory)', (field, max) => {
    const ok = button({ confirm: dialog({ [field]: plain(x(max)) }) });
    const bad = button({ confirm: dialog({ [field]: plain(x(max + 1)) }) });
    expect(blockProblems(actions(ok))).toBeNull();
    expect(blockProblems(row(ok))).toBeNull();
    expect(blockProblems(actions(bad))).toContain(
      `[json-pointer:/blocks/0/elements/0/confirm/${field}/text]`,
    );
    expect(blockProblems(row(bad))).toContain(`[json-pointer:/blocks/0/accessory/confirm/${field}/text]`);
  });

  it('refuses a dialog missing a required part or with a bad style', () => {
    const { deny: _deny, ...noDeny } = dialog();
    expect(blockProblems(actions(button({ confirm: noDeny })))).toMatch(/confirm\/deny/);
    expect(blockProblems(actions(button({ confirm: dialog({ style: 'red' }) })))).toMatch(
      /primary or danger/,
    );
  });
});

describe('fake Slack: context elements', () => {
  it('text elements: 3000 characters pass, 3001 are refused; images pass', () => {
    const ctx = (text: string) => [
      {
        type: 'context',
        elements: [
          { type: 'image', image_url: 'https://e.x/i.png', alt_text: 'i' },
          { type: 'mrkdwn', text },
        ],
      },
    ];
    expect(blockProblems(ctx(x(3000)))).toBeNull();
    expect(blockProblems(ctx(x(3001)))).toContain('[json-pointer:/blocks/0/elements/1/text]');
    expect(blockProblems(ctx(''))).toContain('between 1 and 3000');
  });
});

describe('fake Slack: on the wire', () => {
  it('chat.postMessage with an over-long accessory button answers invalid_blocks with the pointer', async () => {
    const slack = await new FakeSlack().start();
    try {
      const web = new WebClient(slack.token, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
      await expect(
        web.chat.postMessage({
          channel: 'C0PROD',
          text: 'row',
          blocks: row(button({ text: plain(x(76)) })) as never,
        }),
      ).rejects.toMatchObject({
        data: { error: 'invalid_blocks', errors: [expect.stringContaining('/blocks/0/accessory/text/text')] },
      });
    } finally {
      await slack.close();
    }
  });
});
