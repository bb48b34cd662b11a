/**
 * One plan shown in several messages (the same `/rollback production` typed twice on the same state
 * joins one plan): a click that closes the plan (Cancel, an Approve found out of date) or makes it wait
 * for approval is shown on every message of the plan, not only the clicked one. Found in review (a
 * chaos run, seed 218): the other message kept saying "Waiting for approval" with a live Approve
 * button, or kept offering "Rollback to target version", for a plan that no longer existed. The whole
 * app (handlers/app.ts) through the console's HTTP API; `chat.idle()` waits for the background edits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsoleEntry } from '../../handlers/console/surface.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

let app: TestSwitchyard | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function start(twoPerson: boolean): Promise<TestSwitchyard> {
  app = await startTestSwitchyard({
    file: {
      local: { reactivationTime: '0ms', buildTime: '0ms' },
      environments: twoPerson ? { production: { twoPersonRule: true } } : {},
    },
  });
  return app;
}

async function post(sy: TestSwitchyard, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${sy.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()) as Record<string, unknown>;
}

/** `/rollback production` typed by `user`: the id of the confirmation posted for it. */
async function rollback(sy: TestSwitchyard, user: string): Promise<string> {
  return String((await post(sy, '/console/api/command', { user, text: '/rollback production' })).messageId);
}

/** A click on a button of message `messageId`; resolves once the plan's other messages show it too. */
async function click(sy: TestSwitchyard, user: string, actionId: string | undefined, messageId: string) {
  const out = await post(sy, '/console/api/action', { user, actionId, messageId });
  await sy.chat.idle();
  return out;
}

async function entry(sy: TestSwitchyard, id: string): Promise<ConsoleEntry> {
  const res = await fetch(`${sy.baseUrl}/console/api/timeline?user=nobody`);
  const e = ((await res.json()) as { entries: ConsoleEntry[] }).entries.find((x) => x.id === id);
  if (!e) throw new Error(`no entry ${id}`);
  return e;
}

const button = (e: ConsoleEntry, kind: string) =>
  e.message?.buttons.find((b) => b.actionId.startsWith(`sy1:${kind}:`))?.actionId;

/** What a message offers: its title and which of the plan's buttons it shows. */
async function shown(sy: TestSwitchyard, id: string) {
  const e = await entry(sy, id);
  return {
    title: e.message?.title,
    confirm: button(e, 'confirm') !== undefined,
    approve: button(e, 'approve') !== undefined,
    cancel: button(e, 'cancel') !== undefined,
  };
}

/** Resolves once production serves `id` (waits on the platform's events, no polling). */
async function untilLive(sy: TestSwitchyard, id: string): Promise<void> {
  for (;;) {
    let off: (() => void) | undefined;
    const changed = new Promise<void>((resolve) => {
      off = sy.platform.subscribe?.(() => resolve());
    });
    try {
      if ((await sy.platform.snapshot('production')).environment.currentDeploymentId === id) return;
      await changed;
    } finally {
      off?.();
    }
  }
}

/**
 * The console's live stream (`/console/events`), open once this resolves: `next` resolves with the
 * first entry added or edited from then on that `match` accepts.
 */
async function entryStream(sy: TestSwitchyard) {
  const abort = new AbortController();
  const res = await fetch(`${sy.baseUrl}/console/events?user=nobody`, { signal: abort.signal });
  const reader = res.body?.getReader();
  if (!reader) throw new Error('no event stream');
  const decoder = new TextDecoder();
  let buffer = '';
  /** The data of the next frame of type `event` that `match` accepts. */
  const frame = async (event: string, match: (data: unknown) => boolean): Promise<unknown> => {
    for (;;) {
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const text = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(text)?.[1];
        if (/^event: (.*)$/m.exec(text)?.[1] !== event || data === undefined) continue;
        const parsed: unknown = JSON.parse(data);
        if (match(parsed)) return parsed;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('event stream ended');
      buffer += decoder.decode(value, { stream: true });
    }
  };
  await frame('hello', () => true);
  return {
    next: async (match: (e: ConsoleEntry) => boolean) =>
      (await frame('entry', (d) => match(d as ConsoleEntry))) as ConsoleEntry,
    close: () => abort.abort(),
  };
}

describe('a plan shown in two messages, clicked on one', () => {
  it('two-person rule: a confirm on one message makes the other wait for approval too; a Cancel on that one cancels both', async () => {
    const sy = await start(true);
    const m1 = await rollback(sy, 'alice');
    const m2 = await rollback(sy, 'bob');
    const confirm = button(await entry(sy, m1), 'confirm');
    expect(confirm).toBe(button(await entry(sy, m2), 'confirm')); // one plan, two messages

    expect((await click(sy, 'alice', confirm, m1)).outcome).toBe('awaiting_approval');
    // bob's message no longer offers a confirm for a plan that waits for a second person
    expect(await shown(sy, m2)).toEqual({
      title: expect.stringMatching(/^Waiting for approval: roll back production/),
      confirm: false,
      approve: true,
      cancel: true,
    });

    // bob withdraws it from his own message: alice's must not go on waiting for an approval
    const cancel = button(await entry(sy, m2), 'cancel');
    expect((await click(sy, 'bob', cancel, m2)).outcome).toBe('cancelled');
    for (const m of [m1, m2]) {
      expect(await shown(sy, m)).toEqual({
        title: expect.stringMatching(/^Cancelled: roll back production/),
        confirm: false,
        approve: false,
        cancel: false,
      });
    }
  });

  it('two-person rule: an Approve found out of date on one message shows the other out of date too', async () => {
    const sy = await start(true);
    const m1 = await rollback(sy, 'alice');
    const confirm = button(await entry(sy, m1), 'confirm');
    expect((await click(sy, 'alice', confirm, m1)).outcome).toBe('awaiting_approval');
    // bob asks for the same rollback: his message joins the plan, waiting for approval too
    const m2 = await rollback(sy, 'bob');
    expect((await shown(sy, m2)).title).toMatch(/^Waiting for approval/);
    // production moves meanwhile (a push goes live: the environment is not rolled back yet)
    const pushed = await post(sy, '/console/api/push', {
      environment: 'production',
      branch: 'main',
      user: 'dana',
    });
    await untilLive(sy, String(pushed.deploymentId));

    const approve = button(await entry(sy, m1), 'approve');
    expect((await click(sy, 'carol', approve, m1)).outcome).toBe('stale');
    const after = await entry(sy, m2);
    expect({
      title: after.message?.title,
      approve: button(after, 'approve'),
      replan: button(after, 'replan') !== undefined,
    }).toEqual({
      title: expect.stringMatching(/^Out of date: roll back production/),
      approve: undefined,
      replan: true,
    });
  });

  it('no two-person rule: a Cancel on one message shows the other cancelled', async () => {
    const sy = await start(false);
    const m1 = await rollback(sy, 'alice');
    const m2 = await rollback(sy, 'bob');
    const cancel = button(await entry(sy, m2), 'cancel');
    expect((await click(sy, 'bob', cancel, m2)).outcome).toBe('cancelled');
    expect(await shown(sy, m1)).toEqual({
      title: expect.stringMatching(/^Cancelled: roll back production/),
      confirm: false,
      approve: false,
      cancel: false,
    });
  });

  it('two-person rule: a confirm on a /rollback message makes the alert suggestion of the same plan wait for approval too', async () => {
    const sy = await start(true);
    const fired = await post(sy, '/console/api/alert', { environment: 'production', title: 'Checkout 5xx' });
    expect(fired.outcome).toBe('suggested');
    const res = await fetch(`${sy.baseUrl}/console/api/timeline?user=nobody`);
    const entries = ((await res.json()) as { entries: ConsoleEntry[] }).entries;
    const suggestion = entries.find((e) => button(e, 'dismiss') !== undefined);
    if (!suggestion) throw new Error('no alert suggestion posted');
    const m1 = await rollback(sy, 'alice'); // joins the suggestion's plan
    const confirm = button(await entry(sy, m1), 'confirm');
    expect(confirm).toBe(button(suggestion, 'confirm'));

    // The suggestion is refreshed by the alert service, in the background: wait for its edit.
    const stream = await entryStream(sy);
    try {
      const edited = stream.next(
        (e) => e.id === suggestion.id && /^Waiting for approval/.test(e.message?.title ?? ''),
      );
      expect((await click(sy, 'alice', confirm, m1)).outcome).toBe('awaiting_approval');
      await edited;
      expect(await shown(sy, suggestion.id)).toEqual({
        title: expect.stringMatching(/^Waiting for approval: roll back production/),
        confirm: false,
        approve: true,
        cancel: true,
      });
    } finally {
      stream.close();
    }
  });
});
