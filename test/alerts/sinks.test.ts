/**
 * suggestionSink turns a chat refusal its poster calls final (ChatPoster.retryable → false) into a
 * PermanentChatError, so a webhook sender is not asked to retry what can never succeed; a fault that
 * may pass stays as it is (the sender retries).
 */
import { describe, expect, it } from 'vitest';
import type { SuggestionInput } from '../../src/alerts/service.js';
import type { ChatService } from '../../src/chat.js';
import { type ChatPoster, suggestionSink } from '../../src/chat-sinks.js';
import { isPermanentChatError } from '../../src/errors.js';
import type { Flow } from '../../src/flow.js';

function poster(error: Error, retryable: boolean): ChatPoster {
  return {
    surface: 'slack',
    post: () => Promise.reject(error),
    update: () => Promise.reject(error),
    retryable: () => retryable,
  };
}

const note = {
  kind: 'note',
  environment: 'production',
  alert: { source: 'generic', title: 'HighErrorRate', status: 'firing', labels: {}, startsAt: 0 },
  sentence: 'dep_x went live before this alert',
  correlation: {},
  destinations: [{ surface: 'slack', channel: 'C0ALERTS' }],
} as unknown as SuggestionInput;

describe('suggestionSink', () => {
  const make = (p: ChatPoster) => suggestionSink(p, {} as ChatService, {} as Flow);

  it('a refusal the poster calls final becomes a PermanentChatError', async () => {
    const e = await make(poster(new Error('not_in_channel'), false))
      .suggest(note)
      .catch((err: unknown) => err);
    expect(isPermanentChatError(e)).toBe(true);
    expect((e as Error).message).toBe('not_in_channel');
  });

  it('a fault that may pass is passed on as it is', async () => {
    const outage = new Error('503 from the chat API');
    const e = await make(poster(outage, true))
      .suggest(note)
      .catch((err: unknown) => err);
    expect(e).toBe(outage);
  });
});
