/**
 * Notices through the composition root (`npm start` wiring): a push made on the console's operator
 * API that fails to build shows up as a notice in the console timeline, delivered live over its
 * server-sent events, and `/metrics` counts it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestSwitchyard, type TestSwitchyard } from '../support/switchyard.js';

let app: TestSwitchyard | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

interface Entry {
  readonly message?: { readonly title: string };
}

/** Reads server-sent event frames from the console's live stream. */
async function openStream(baseUrl: string, signal: AbortSignal) {
  const res = await fetch(`${baseUrl}/console/events`, { signal });
  const reader = res.body?.getReader();
  if (!reader) throw new Error('no event stream');
  const decoder = new TextDecoder();
  let buffer = '';
  /** The next frame of type `event` whose data `match` accepts. */
  const next = async (event: string, match: (data: unknown) => boolean): Promise<unknown> => {
    for (;;) {
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        const type = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (type !== event || data === undefined) continue;
        const parsed: unknown = JSON.parse(data);
        if (match(parsed)) return parsed;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('event stream ended');
      buffer += decoder.decode(value, { stream: true });
    }
  };
  return { next, close: () => reader.cancel() };
}

const titleOf = (e: unknown) => (e as Entry).message?.title ?? '';

describe('notices in the running app', () => {
  it('a failed build pushed on the console appears as a notice in the console timeline', async () => {
    app = await startTestSwitchyard();
    const base = app.baseUrl;
    const stream = await openStream(base, AbortSignal.timeout(20_000));
    await stream.next('hello', () => true);
    const pushed = await fetch(`${base}/console/api/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ environment: 'production', fail: true, message: 'Break the build' }),
    });
    expect(pushed.status).toBe(201);
    const { deploymentId } = (await pushed.json()) as { deploymentId: string };
    const entry = await stream.next('entry', (e) => titleOf(e).endsWith('failed on production'));
    await stream.close();
    expect(titleOf(entry)).toBe(`${deploymentId} failed on production`);

    const timeline = (await (await fetch(`${base}/console/api/timeline`)).json()) as { entries: Entry[] };
    expect(
      timeline.entries.filter((e) => e.message?.title === `${deploymentId} failed on production`),
    ).toHaveLength(1);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('switchyard_notices_total{surface="console",kind="failed"} 1');
  });
});
