/**
 * suggestionSink turns a chat refusal its poster calls final (ChatPoster.retryable → false) into a
 * PermanentChatError, so a webhook sender is not asked to retry what can never succeed; a fault that
 * may pass stays as it is (the sender retries).
 */
import { describe, expect, it } from 'vitest';
import type { SuggestionInput } from '../../src/alerts/service.js';
import { ChatService } from '../../src/chat.js';
import { type ChatPoster, suggestionSink } from '../../src/chat-sinks.js';
import { ManualClock } from '../../src/clock.js';
import { isPermanentChatError } from '../../src/errors.js';
import type { Flow } from '../../src/flow.js';
import type { PlanRecord } from '../../src/plan-store.js';
import type { MessageView } from '../../src/views/types.js';
import { plan } from '../views/fixtures.js';

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

describe('suggestionSink: one plan, several incidents', () => {
  it("each suggestion shows its own alert, not the plan's first one (one plan serves every request for a switch)", async () => {
    const p = plan('rollback');
    const record = {
      plan: p,
      state: 'pending',
      requestedBy: { surface: 'system', userId: 'switchyard', displayName: 'Switchyard' },
      alert: { source: 'alertmanager', title: 'HighErrorRate', status: 'firing', startedAt: 1 },
      messages: [],
      createdAt: 1,
      updatedAt: 1,
      expiresAt: 3_600_001,
    } as unknown as PlanRecord;
    const flow = {
      get: async () => record,
      attach: async () => ({ attached: true }),
      twoPersonRule: () => false,
    } as unknown as Flow;
    const posted: MessageView[] = [];
    const poster: ChatPoster = {
      surface: 'slack',
      post: async (channel, view) => {
        posted.push(view);
        return { surface: 'slack', channel, messageId: String(posted.length) };
      },
      update: async () => undefined,
    };
    const sink = suggestionSink(poster, new ChatService({ flow, clock: new ManualClock() }), flow);
    await sink.suggest({
      ...note,
      kind: 'suggestion',
      plan: p,
      alertContext: { source: 'grafana', title: 'CheckoutLatency', status: 'firing', startedAt: 2 },
    });
    const text = JSON.stringify(posted[0]);
    expect(text).toContain('CheckoutLatency');
    expect(text).not.toContain('HighErrorRate');
  });
});

describe('suggestionSink.refresh: a plan listing several alerts', () => {
  const p = plan('rollback');
  const ref = (messageId: string, surface: 'slack' | 'discord' = 'slack') => ({
    surface,
    channel: 'C0ALERTS',
    messageId,
  });
  const listed = (id: string, title: string, resolvedAt?: number) => ({
    id,
    alert: { id, source: 'grafana', title, status: 'firing' as const, startedAt: 2 },
    at: 2,
    ...(resolvedAt === undefined ? {} : { resolvedAt }),
  });
  function recordWith(state: string, alerts: unknown[]): PlanRecord {
    return {
      plan: p,
      state,
      requestedBy: { surface: 'system', userId: 'switchyard-alerts', displayName: 'Switchyard alerts' },
      alert: { id: 'a1', source: 'grafana', title: 'HighErrorRate', status: 'firing', startedAt: 1 },
      alerts,
      messages: [ref('1'), ref('2'), ref('3'), ref('4', 'discord')],
      suggestions: [
        { slot: 'slack:C0ALERTS', alertId: 'a1', at: 1, ref: ref('1') },
        { slot: 'slack:C0WATCHED:17.1', alertId: 'a2', at: 1, ref: ref('2') },
        { slot: 'slack:C0OPS', alertId: 'a1', at: 1, ref: ref('3'), dismissed: true },
        { slot: 'discord:42', alertId: 'a1', at: 1, ref: ref('4', 'discord') },
        { slot: 'slack:C0LATE', alertId: 'a2', at: 1 },
      ],
      createdAt: 1,
      updatedAt: 1,
      expiresAt: 3_600_001,
    } as unknown as PlanRecord;
  }
  async function refreshed(record: PlanRecord, alertId?: string): Promise<Map<string, string>> {
    const flow = { get: async () => record, twoPersonRule: () => false } as unknown as Flow;
    const updated = new Map<string, string>();
    const poster: ChatPoster = {
      surface: 'slack',
      post: async () => {
        throw new Error('refresh never posts');
      },
      update: async (r, view) => {
        updated.set(r.messageId, JSON.stringify(view));
      },
    };
    await suggestionSink(poster, new ChatService({ flow, clock: new ManualClock() }), flow).refresh?.(
      p.id,
      alertId === undefined ? {} : { alertId },
    );
    return updated;
  }

  it("edits its surface's undismissed channel messages, listing every alert; a thread's only for its own alert", async () => {
    const alerts = [listed('a1', 'HighErrorRate'), listed('a2', 'CheckoutLatency', 5)];
    const updated = await refreshed(recordWith('pending', alerts));
    // The list changed: the channel messages show it; the thread (a2's) is not edited for that.
    expect([...updated.keys()].sort()).toEqual(['1']);
    const first = updated.get('1') ?? '';
    expect(first.indexOf('HighErrorRate')).toBeLessThan(first.indexOf('CheckoutLatency'));
    expect(first).toContain('1 more alert on this deployment (all resolved)');
    expect(first).toContain(' · resolved');
    // a2 changed (it resolved): its thread is edited too, showing its own alert only.
    const withThread = await refreshed(recordWith('pending', alerts), 'a2');
    expect([...withThread.keys()].sort()).toEqual(['1', '2']);
    const second = withThread.get('2') ?? '';
    expect(second).toContain('CheckoutLatency');
    expect(second).not.toContain('HighErrorRate');
    expect(second).toContain('It has resolved.');
    expect(second).not.toContain('(optional)');
  });

  it('says the rollback is optional once every listed alert resolved', async () => {
    const updated = await refreshed(
      recordWith('pending', [listed('a1', 'HighErrorRate', 3), listed('a2', 'CheckoutLatency', 5)]),
    );
    expect(updated.get('1')).toContain('All 2 alerts resolved');
    expect(updated.get('1')).toContain('(optional)');
  });

  it('leaves the messages of a confirmed plan alone: they show the switch', async () => {
    expect((await refreshed(recordWith('enqueued', [listed('a1', 'HighErrorRate', 3)]))).size).toBe(0);
  });
});
