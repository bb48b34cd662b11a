/**
 * A click's view never paints over the progress of the job it made or joined (as on Slack and
 * Discord): a second Rollback click while the switch runs (a double click, a second tab, a colleague)
 * once replaced the message's live steps with "Confirmed… progress follows" until the worker's next
 * report. The console applies followed progress itself (ConsoleSurface.report), so the surface knows
 * which job's progress each message shows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { registerConsole } from '../../handlers/console/routes.js';
import { ConsoleSurface } from '../../handlers/console/surface.js';
import type { ClickReply } from '../../src/chat.js';
import { RefusalCode } from '../../src/domain/result.js';
import { HttpServer } from '../../src/http.js';
import { refusalView } from '../../src/views/model.js';
import { progressFixture } from '../support/progress.js';

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const clickView = refusalView({ code: RefusalCode.invalidInput, message: 'Confirmed: progress follows.' });

async function rig(reply: ClickReply) {
  const surface = new ConsoleSurface();
  const http = new HttpServer();
  const routes = registerConsole(http, {
    surface,
    chat: { click: async () => reply } as never,
    flow: {} as never,
    platform: { name: 'fake' } as never,
  });
  const port = await http.listen(0);
  closers.push(async () => {
    routes.close();
    await http.close(50);
  });
  const click = async (messageId: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/console/api/action`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'bob', actionId: 'sy1:confirm:plan_0123abcd', messageId }),
    });
    expect(res.status).toBe(200);
  };
  return { surface, click };
}

function running(jobId: string) {
  return progressFixture({
    jobId,
    steps: [{ step: 'reactivating', state: 'running', startedAt: T0 }],
    updatedAt: T0,
  });
}

describe('console: a click on a message showing a job', () => {
  it("leaves that job's progress on the message", async () => {
    const { surface, click } = await rig({
      outcome: 'joined',
      jobId: 'sw_1',
      update: clickView,
    } as ClickReply);
    const ref = surface.postView(clickView);
    await surface.report(running('sw_1'), [ref]);
    expect(surface.get(ref.messageId)?.message?.kind).toBe('progress');
    await click(ref.messageId);
    expect(surface.get(ref.messageId)?.message?.kind).toBe('progress');
  });

  it('still shows the view on a message that shows no progress, or another job’s', async () => {
    const { surface, click } = await rig({
      outcome: 'joined',
      jobId: 'sw_2',
      update: clickView,
    } as ClickReply);
    const fresh = surface.postView(refusalView({ code: RefusalCode.invalidInput, message: 'before' }));
    await click(fresh.messageId);
    expect(JSON.stringify(surface.get(fresh.messageId)?.message)).toContain('Confirmed: progress follows.');
    const other = surface.postView(clickView);
    await surface.report(running('sw_1'), [other]);
    await click(other.messageId);
    expect(surface.get(other.messageId)?.message?.kind).not.toBe('progress');
  });
});
