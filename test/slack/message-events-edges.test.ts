/**
 * Watched-channel messages (handlers/slack/events/message.ts), what no other test pins down: a thread's
 * parent is not taken for a reply, an attachment that has only a fallback is read, and a message whose
 * attachments Slack sent in an unexpected shape still reaches the alert watcher with its text.
 */
import type { App } from '@slack/bolt';
import { describe, expect, it } from 'vitest';
import type { ChannelMessage, SlackHandlerDeps } from '../../handlers/slack/context.js';
import { register } from '../../handlers/slack/events/message.js';
import { silentLogger } from '../../src/log.js';

type Listener = (args: { event: unknown; context: { botId?: string } }) => Promise<void>;

/** Registers the message listener on a stand-in for Bolt's App; returns a way to deliver an event. */
function watched() {
  const seen: ChannelMessage[] = [];
  let listener: Listener | undefined;
  const app = {
    event: (name: string, fn: Listener) => {
      if (name === 'message') listener = fn;
    },
  } as unknown as App;
  const deps = {
    logger: silentLogger,
    onChannelMessage: async (m: ChannelMessage) => {
      seen.push(m);
    },
  } as unknown as SlackHandlerDeps;
  register(app, deps);
  const deliver = async (event: Record<string, unknown>) => {
    if (listener === undefined) throw new Error('no message listener registered');
    await listener({
      event: { type: 'message', channel: 'C0ALERTS', ...event },
      context: { botId: 'B0SWITCH' },
    });
  };
  return { seen, deliver };
}

describe('Slack watched-channel messages', () => {
  it("a thread's parent (thread_ts equal to its own ts) is passed on as a channel message, not as a reply", async () => {
    const { seen, deliver } = watched();
    await deliver({
      ts: '1700000000.000100',
      thread_ts: '1700000000.000100',
      user: 'U0X',
      text: '[FIRING:1] Down',
    });
    await deliver({
      ts: '1700000000.000200',
      thread_ts: '1700000000.000100',
      user: 'U0X',
      text: '[FIRING:1] Again',
    });
    expect(seen.map((m) => m.threadTs)).toEqual([undefined, '1700000000.000100']);
  });

  it("reads an attachment that has only a fallback (an alert bot's attachment without pretext, title or text)", async () => {
    const { seen, deliver } = watched();
    await deliver({
      ts: '1700000000.000300',
      subtype: 'bot_message',
      bot_id: 'B0ALERTMANAGER',
      text: '',
      attachments: [{ fallback: '[FIRING:1] HighErrorRate env=production' }],
    });
    expect(seen.map((m) => m.text)).toEqual(['[FIRING:1] HighErrorRate env=production']);
  });

  it('a message whose attachments are not the expected shape still reaches the watcher with its text', async () => {
    const { seen, deliver } = watched();
    await deliver({
      ts: '1700000000.000400',
      user: 'U0X',
      text: '[FIRING:1] Down env=production',
      attachments: 'not a list',
    });
    expect(seen.map((m) => m.text)).toEqual(['[FIRING:1] Down env=production']);
  });
});
