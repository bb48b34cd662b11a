/**
 * The two-person rule's "waiting for approval" message names everyone who may not approve
 * (docs/permissions.md, step 3): the confirmer, and the person who typed the command when someone else
 * confirmed. Found in review: alice typed `/rollback production`, bob confirmed, and the message every
 * channel member saw said "Requested by bob … (not bob)" and the Approve dialog "bob asked to roll
 * back": alice looked free to approve, clicked and was refused (self_approval). The whole app
 * (handlers/app.ts, src/chat.ts) through the console's HTTP API; `chat.idle()` waits for background edits.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConsoleEntry } from '../../handlers/console/surface.js';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

// A fresh app (and namespace) per test: each asks for the same rollback of production.
let app: TestSwitchyard;
beforeEach(async () => {
  app = await startTestSwitchyard({
    file: {
      local: { reactivationTime: '0ms', buildTime: '0ms' },
      environments: { production: { twoPersonRule: true } },
    },
  });
});
afterEach(async () => {
  await app?.close();
});

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${app.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()) as Record<string, unknown>;
}

async function entries(): Promise<ConsoleEntry[]> {
  const res = await fetch(`${app.baseUrl}/console/api/timeline?user=carol`);
  return ((await res.json()) as { entries: ConsoleEntry[] }).entries;
}

/** Message `id` as carol (any channel member) sees it. */
async function entry(id: string): Promise<ConsoleEntry> {
  const e = (await entries()).find((x) => x.id === id);
  if (!e) throw new Error(`no entry ${id}`);
  return e;
}

const button = (e: ConsoleEntry, kind: string) =>
  e.message?.buttons.find((b) => b.actionId.startsWith(`sy1:${kind}:`));

async function click(user: string, messageId: string, actionId: string | undefined) {
  const out = await post('/console/api/action', { user, messageId, actionId });
  await app.chat.idle();
  return out;
}

/** The "Requested by … (not …)." line of a message waiting for approval. */
function waitingLine(e: ConsoleEntry): string | undefined {
  for (const b of e.message?.blocks ?? []) {
    if (b.type !== 'text') continue;
    const text = b.spans.map((s) => s.text).join('');
    if (text.includes('Waiting for approval')) return text;
  }
  return undefined;
}

/** `/rollback production` typed by `asker`, confirmed by `confirmer`: the message, waiting for approval. */
async function askedAndConfirmed(asker: string, confirmer: string): Promise<string> {
  const id = String(
    (await post('/console/api/command', { user: asker, text: '/rollback production' })).messageId,
  );
  const confirm = button(await entry(id), 'confirm')?.actionId;
  expect((await click(confirmer, id, confirm)).outcome).toBe('awaiting_approval');
  return id;
}

describe('waiting for approval under the two-person rule', () => {
  it('asked by alice, confirmed by bob: names both as not approving, in the message and the Approve dialog', async () => {
    const id = await askedAndConfirmed('alice', 'bob');
    const waiting = await entry(id);
    expect(waitingLine(waiting)).toBe(
      'Requested by alice, confirmed by bob. Waiting for approval by someone other than alice and bob.',
    );
    const approve = button(waiting, 'approve');
    expect(approve?.confirm?.text).toMatch(
      /^alice asked to roll back production to dep_\w+ and bob confirmed it\. /,
    );
    // What it says is what Flow enforces: alice and bob are refused, carol may approve.
    for (const user of ['alice', 'bob']) {
      expect((await click(user, id, approve?.actionId)).outcome).toBe('refused');
    }
    expect(waitingLine(await entry(id))).toContain('someone other than alice and bob.');
    expect((await click('carol', id, approve?.actionId)).outcome).toBe('enqueued');
  });

  it('asked and confirmed by alice: names her alone, as before', async () => {
    const id = await askedAndConfirmed('alice', 'alice');
    const waiting = await entry(id);
    expect(waitingLine(waiting)).toBe(
      'Requested by alice. Waiting for approval by a second person (not alice).',
    );
    expect(button(waiting, 'approve')?.confirm?.text).toMatch(/^alice asked to roll back production to /);
  });

  it('an alert suggestion confirmed by bob names bob alone: the alert bot asks, but never approves', async () => {
    const fired = await post('/console/api/alert', { environment: 'production', title: 'Checkout 5xx' });
    expect(fired.outcome).toBe('suggested');
    const suggestion = (await entries()).findLast(
      (e) => e.message?.kind === 'confirmation' && JSON.stringify(e.message).includes('Checkout 5xx'),
    );
    if (!suggestion) throw new Error('no suggestion posted');
    const confirm = button(suggestion, 'confirm')?.actionId;
    expect((await click('bob', suggestion.id, confirm)).outcome).toBe('awaiting_approval');
    const waiting = await entry(suggestion.id);
    expect(waitingLine(waiting)).toBe('Requested by bob. Waiting for approval by a second person (not bob).');
    expect(button(waiting, 'approve')?.confirm?.text).toMatch(/^bob asked to roll back production to /);
  });
});
