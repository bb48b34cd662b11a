/**
 * SurfaceConnection (handlers/connection.ts), the state machine Slack's and Discord's start-up share,
 * on a ManualClock: start() waits a bounded time for the first attempt; failed attempts are retried in
 * the background with backoff doubling up to the maximum and reset once ready; a rejection ends it;
 * one attempt at a time; stop() ends the retries (and, with a reason, rejects ready()).
 */
import { describe, expect, it } from 'vitest';
import { SurfaceConnection } from '../handlers/connection.js';
import { ManualClock } from '../src/clock.js';

type Outcome = 'ok' | 'down' | 'rejected' | 'hang';

/** A connection whose attempts end as `outcomes` says, in order (then 'down'); records when each began. */
function rig(outcomes: Outcome[], retry = { retryMinMs: 100, retryMaxMs: 400 }) {
  const clock = new ManualClock(0);
  const began: number[] = [];
  const hung: (() => void)[] = [];
  const conn: SurfaceConnection = new SurfaceConnection({
    ...retry,
    problem: 'not started',
    clock,
    attempt: async () => {
      began.push(clock.now());
      const outcome = outcomes.shift() ?? 'down';
      if (outcome === 'hang') await new Promise<void>((resolve) => hung.push(resolve));
      if (outcome === 'ok' || outcome === 'hang') conn.succeeded();
      else if (outcome === 'rejected') conn.rejected('bad token', new Error('token rejected'));
      else conn.unavailable(`down #${began.length}`);
    },
  });
  return { clock, conn, began, hung };
}

describe('SurfaceConnection', () => {
  it('starts waiting, retries with backoff doubling up to the maximum, and is ready when an attempt succeeds', async () => {
    const { clock, conn, began } = rig(['down', 'down', 'down', 'down', 'ok']);
    expect(conn.status()).toEqual({ state: 'waiting', problem: 'not started', attempts: 0 });
    await conn.start(1_000);
    expect(conn.status()).toEqual({ state: 'waiting', problem: 'down #1', attempts: 1 });
    const ready = conn.ready();
    await clock.advance(2_000);
    await ready;
    expect(began).toEqual([0, 100, 300, 700, 1_100]); // pauses 100, 200, 400, 400
    expect(conn.status()).toEqual({ state: 'ready' });
    expect(clock.pending).toBe(0);
  });

  it('starts over at the minimum pause after a ready connection is lost', async () => {
    const { clock, conn, began } = rig(['down', 'down', 'ok', 'down', 'ok']);
    await conn.start(1_000);
    await clock.advance(300);
    expect(conn.state).toBe('ready');
    conn.lost('connection closed');
    expect(conn.status()).toEqual({ state: 'waiting', problem: 'connection closed', attempts: 3 });
    await conn.attempt();
    await clock.advance(100);
    expect(began).toEqual([0, 100, 300, 300, 400]);
    expect(conn.state).toBe('ready');
  });

  it('start() returns after the bounded wait while the first attempt still runs', async () => {
    const { clock, conn, hung } = rig(['hang']);
    const started = conn.start(500);
    await clock.advance(500);
    await started;
    expect(conn.attempting).toBe(true);
    expect(conn.state).toBe('waiting');
    hung[0]?.();
    await conn.attempt(); // joins the running attempt
    expect(conn.attempting).toBe(false);
    expect(conn.status()).toEqual({ state: 'ready' });
  });

  it('runs one attempt at a time: a second call joins the running one', async () => {
    const { conn, began, hung } = rig(['hang']);
    const first = conn.attempt();
    const second = conn.attempt();
    expect(began).toHaveLength(1);
    hung[0]?.();
    await Promise.all([first, second]);
    expect(conn.status()).toEqual({ state: 'ready' });
    await conn.attempt(); // ready: nothing to do
    expect(began).toHaveLength(1);
  });

  it('a rejection fails start() and ready(), and nothing is retried', async () => {
    const { clock, conn, began } = rig(['down', 'rejected']);
    const waiter = expect(conn.ready()).rejects.toThrow('token rejected');
    await conn.start(1_000);
    await clock.advance(100);
    await waiter;
    await expect(conn.ready()).rejects.toThrow('token rejected');
    expect(conn.status()).toEqual({ state: 'rejected', problem: 'bad token' });
    await clock.advance(10_000);
    expect(began).toHaveLength(2);

    const early = rig(['rejected']);
    await expect(early.conn.start(1_000)).rejects.toThrow('token rejected');
  });

  it('schedules no retry before start() or after stop(); stop(reason) rejects ready()', async () => {
    const { clock, conn, began } = rig(['down', 'down']);
    expect(conn.attempt()).toBeInstanceOf(Promise);
    await conn.attempt();
    expect(began).toHaveLength(1);
    expect(clock.pending).toBe(0); // not started: a one-off attempt, no background retry

    await conn.start(1_000);
    expect(clock.pending).toBe(1);
    const waiter = expect(conn.ready()).rejects.toThrow('stopped');
    conn.stop(new Error('stopped'));
    await waiter;
    await expect(conn.ready()).rejects.toThrow('stopped');
    expect(clock.pending).toBe(0);
    await clock.advance(10_000);
    await conn.attempt();
    expect(began).toHaveLength(2);
    expect(conn.stopped).toBe(true);
  });
});
