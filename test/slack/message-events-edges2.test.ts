/**
 * handlers/slack/events/message.ts: what reaches the alert watcher, on the `message`
 * listener registered on a stand-in app — which subtypes are new content, which bots are skipped (the
 * bot itself only), a thread's parent versus a reply, the text read from attachments, and fields passed
 * through.
 */
import type { App } from '@slack/bolt';
import { describe, expect, it } from 'vitest';
import type { ChannelMessage, SlackHandlerDeps } from '../../handlers/slack/context.js';
import { messageText, register } from '../../handlers/slack/events/message.js';
import { silentLogger } from '../../src/log.js';

const BOT_ID = 'B0SWITCH';

type Listener = (args: { event: unknown; context: { botId?: string } }) => Promise<void>;

/** Registers the listener on a stand-in app; returns a function delivering one event to it. */
function listening(watch?: (m: ChannelMessage) => Promise<void>) {
  const seen: ChannelMessage[] = [];
  let listener: Listener | undefined;
  const app = {
    event: (name: string, fn: Listener) => {
      expect(name).toBe('message');
      listener = fn;
    },
  } as unknown as App;
  const deps = {
    logger: silentLogger,
    onChannelMessage:
      watch ??
      (async (m: ChannelMessage) => {
        seen.push(m);
      }),
  } as unknown as SlackHandlerDeps;
  register(app, deps);
  const deliver = async (event: Record<string, unknown>) => {
    if (listener === undefined) throw new Error('no message listener registered');
    await listener({ event: { type: 'message', channel: 'C0ALERTS', ...event }, context: { botId: BOT_ID } });
  };
  return { seen, deliver };
}

describe('handlers/slack/events/message.ts', () => {
  it('reads thread broadcasts, file shares and /me messages as new content', async () => {
    const { seen, deliver } = listening();
    await deliver({ subtype: 'thread_broadcast', ts: '1.1', thread_ts: '1.0', text: 'prod 5xx (broadcast)' });
    await deliver({ subtype: 'file_share', ts: '1.2', text: 'prod 5xx, graph attached' });
    await deliver({ subtype: 'me_message', ts: '1.3', text: 'sees prod 5xx' });
    expect(seen.map((m) => m.text)).toEqual([
      'prod 5xx (broadcast)',
      'prod 5xx, graph attached',
      'sees prod 5xx',
    ]);
  });

  it("skips the bot's own messages but reads other bots' (alert bots)", async () => {
    const { seen, deliver } = listening();
    await deliver({ subtype: 'bot_message', ts: '2.1', bot_id: BOT_ID, text: 'Roll back production?' });
    await deliver({
      subtype: 'bot_message',
      ts: '2.2',
      bot_id: 'B0ALERTMGR',
      username: 'Alertmanager',
      text: 'FIRING',
    });
    expect(seen).toEqual([
      { channel: 'C0ALERTS', ts: '2.2', text: 'FIRING', botId: 'B0ALERTMGR', username: 'Alertmanager' },
    ]);
  });

  it("a thread's parent (thread_ts equal to its ts) has no threadTs; a reply has its parent's", async () => {
    const { seen, deliver } = listening();
    await deliver({ ts: '3.0', thread_ts: '3.0', user: 'U0ALICE', text: 'parent' });
    await deliver({ ts: '3.1', thread_ts: '3.0', user: 'U0ALICE', text: 'reply' });
    expect(seen).toEqual([
      { channel: 'C0ALERTS', ts: '3.0', text: 'parent', user: 'U0ALICE' },
      { channel: 'C0ALERTS', ts: '3.1', threadTs: '3.0', text: 'reply', user: 'U0ALICE' },
    ]);
  });

  it('an attachment with only empty pretext, title and text is read by its fallback; empty lines are dropped', async () => {
    const { seen, deliver } = listening();
    await deliver({
      subtype: 'bot_message',
      ts: '4.1',
      bot_id: 'B0GRAFANA',
      text: '',
      attachments: [
        { pretext: '', title: '', text: '', fallback: '[FIRING] production 5xx' },
        { text: '  ' },
      ],
    });
    expect(seen.map((m) => m.text)).toEqual(['[FIRING] production 5xx']);
  });

  it('keeps the message text before the attachments, and unreadable attachments do not lose the message', async () => {
    const { seen, deliver } = listening();
    await deliver({
      subtype: 'bot_message',
      ts: '5.1',
      bot_id: 'B0X',
      text: 'alert:',
      attachments: [{ title: 'prod 5xx' }],
    });
    await deliver({
      subtype: 'bot_message',
      ts: '5.2',
      bot_id: 'B0X',
      text: 'prod down',
      attachments: 'not-a-list',
    });
    expect(seen.map((m) => m.text)).toEqual(['alert:\nprod 5xx', 'prod down']);
  });

  it('a message without text (attachments only, no text field) still reaches the watcher', async () => {
    const { seen, deliver } = listening();
    await deliver({ subtype: 'bot_message', ts: '6.1', bot_id: 'B0X', attachments: [{ title: 'prod 5xx' }] });
    expect(seen.map((m) => m.text)).toEqual(['prod 5xx']);
  });

  it('a watcher that throws is logged, not thrown into Bolt (which would retry or crash the delivery)', async () => {
    const { deliver } = listening(async () => {
      throw new Error('alert store down');
    });
    await expect(deliver({ ts: '7.1', user: 'U0ALICE', text: 'prod 5xx' })).resolves.toBeUndefined();
  });

  it('messageText: an attachment with a title and a fallback is read by its title only', () => {
    expect(
      messageText({
        type: 'message',
        channel: 'C0ALERTS',
        ts: '8.1',
        text: '',
        attachments: [{ title: 'prod 5xx', fallback: 'fallback text' }],
      }),
    ).toBe('prod 5xx');
  });
});
