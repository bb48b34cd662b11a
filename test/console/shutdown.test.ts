/**
 * Shutdown with a console tab open: the tab's event stream (/console/events) is ended first, so the
 * HTTP server closes and stop() returns (it once waited forever, until main.ts's hard exit).
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startTestSwitchyard } from '../support/switchyard.js';

describe('shutdown with a console tab open', () => {
  it('ends the event stream and stops (the test times out if stop() hangs)', async () => {
    const app = await startTestSwitchyard();
    const req = request({ host: '127.0.0.1', port: app.port, path: '/console/events?user=alice' });
    req.on('error', () => undefined);
    const ended = new Promise<string>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        res.once('end', () => resolve('ended'));
        res.once('close', () => resolve('closed'));
      });
    });
    const opened = new Promise<void>((resolve) =>
      req.on('response', (res) => res.once('data', () => resolve())),
    );
    req.end();
    await opened;
    await app.close();
    expect(['ended', 'closed']).toContain(await ended);
  }, 15_000);
});
