/**
 * The renderers' output goes to the real SDKs as-is: it type-checks as the SDK call arguments, and
 * discord.js turns it into the REST body we meant (its own MessagePayload code, its builders'
 * validation). No network: a WebhookClient is only used as a MessagePayload target.
 */
import type { RespondArguments } from '@slack/bolt';
import type { ChatPostMessageArguments, ChatUpdateArguments } from '@slack/web-api';
import {
  ActionRowBuilder,
  type ButtonBuilder,
  EmbedBuilder,
  type InteractionReplyOptions,
  type MessageCreateOptions,
  type MessageEditOptions,
  MessagePayload,
  WebhookClient,
} from 'discord.js';
import { afterAll, describe, expect, it } from 'vitest';
import { renderDiscord } from '../../src/views/discord.js';
import { renderSlack } from '../../src/views/slack.js';
import { catalog } from './catalog.js';

const hook = new WebhookClient({ id: '112233445566778899', token: 'not-a-real-token' });
afterAll(() => hook.destroy());

describe('SDK acceptance', () => {
  it.each(catalog())(
    '%s: Slack output is a chat.postMessage / chat.update / respond argument',
    (_name, view) => {
      const slack = renderSlack(view);
      const post: ChatPostMessageArguments = { channel: 'C0123', ...slack };
      const update: ChatUpdateArguments = { channel: 'C0123', ts: '1700000000.000100', ...slack };
      const respond: RespondArguments = { ...slack, replace_original: true };
      expect(post.text).toBe(slack.text);
      expect(update).toMatchObject(slack);
      expect(respond).toMatchObject(slack);
    },
  );

  it.each(catalog())('%s: discord.js sends the embed, buttons and no mentions', async (_name, view) => {
    const msg = renderDiscord(view);
    const create: MessageCreateOptions = msg;
    const edit: MessageEditOptions = msg;
    const reply: InteractionReplyOptions = msg;
    expect([create.embeds, edit.embeds, reply.embeds]).toEqual([msg.embeds, msg.embeds, msg.embeds]);

    const payload = await MessagePayload.create(hook, msg).resolveBody().resolveFiles();
    const body = payload.body as Record<string, unknown>;
    expect(body.allowed_mentions).toEqual({ parse: [] });
    expect(body.embeds).toEqual(msg.embeds);
    expect(body.components).toEqual(msg.components);

    // discord.js builders validate lengths and required fields on their own
    for (const row of msg.components) {
      const built = new ActionRowBuilder<ButtonBuilder>(row).toJSON();
      expect(built.components).toHaveLength(row.components.length);
    }
    for (const e of msg.embeds) {
      const b = new EmbedBuilder();
      if (e.title !== undefined) b.setTitle(e.title);
      if (e.description !== undefined) b.setDescription(e.description);
      if (e.color !== undefined) b.setColor(e.color);
      if (e.fields !== undefined) b.addFields(e.fields);
      expect(b.toJSON()).toEqual(e);
    }
  });

  it('without allowedMentions discord.js would fall back to the client default', async () => {
    const [, view] = catalog()[0] ?? [];
    if (view === undefined) throw new Error('empty catalog');
    const { allowedMentions: _dropped, ...snakeOnly } = renderDiscord(view);
    const body = (await MessagePayload.create(hook, snakeOnly).resolveBody().resolveFiles()).body as Record<
      string,
      unknown
    >;
    expect(body.allowed_mentions).toBeUndefined();
  });
});
