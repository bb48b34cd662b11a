/**
 * Failure views with many domains name the domains not on the target first: a long list cut to
 * "…and N more" (Slack and Discord show 15 items) never hides the one that did not move.
 */
import { describe, expect, it } from 'vitest';
import { renderDiscord } from '../../src/views/discord.js';
import { progressView } from '../../src/views/model.js';
import { renderSlack } from '../../src/views/slack.js';
import { NOW, plan, progress } from './fixtures.js';

/** A failed rollback over `n` domains where only the last one still answers from the old deployment. */
function split(
  n: number,
  message = 'The platform reports the rollback done, but not every domain answers from it.',
) {
  const p = plan('rollback');
  const traffic = Array.from({ length: n }, (_, k) => ({
    hostname: `d${String(k).padStart(3, '0')}.example.com`,
    deploymentId: k === n - 1 ? p.current.id : p.target.id,
    ok: k !== n - 1,
  }));
  return progress(p, {
    outcome: 'failed',
    code: 'verify_timeout',
    message,
    traffic,
    steps: [
      { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
      { step: 'verifying', state: 'failed', startedAt: NOW + 10, endedAt: NOW + 60_000 },
    ],
  });
}

describe('traffic lists put the domains not on the target first', () => {
  it('model: the failing domain leads the list, and the label counts those not on the target', () => {
    const v = progressView(split(20));
    const list = v.blocks.find((b) => b.type === 'list');
    expect(list?.type === 'list' ? list.label : undefined).toBe(
      'Where traffic was when the job ended (1 of 20 not on the target)',
    );
    expect(list?.type === 'list' ? list.items[0]?.state : undefined).toBe('bad');
    expect(list?.type === 'list' ? list.items.slice(1).every((i) => i.state === 'ok') : undefined).toBe(true);
  });

  it('Slack: with 20 domains the one that did not move is shown, not folded into "…and 5 more"', () => {
    const text = JSON.stringify(renderSlack(progressView(split(20))));
    expect(text).toContain(':x: `d019.example.com`');
    expect(text).toContain('…and 5 more (20 in total)');
  });

  it('Discord: with 20 domains the one that did not move is shown', () => {
    const text = JSON.stringify(renderDiscord(progressView(split(20))));
    expect(text).toContain('❌ `d019.example.com`');
  });

  it('100 domains and a long final sentence: both renderers still show the domain not on the target', () => {
    const p = plan('rollback');
    const list = Array.from(
      { length: 100 },
      (_, k) => `d${String(k).padStart(3, '0')}.example.com → ${p.target.id}`,
    );
    const message = `The platform reports the rollback done, but after 60s not every domain answers from ${p.target.id}: ${list.join(', ')}. production is serving ${p.target.id}.`;
    const view = progressView(split(100, message));
    expect(JSON.stringify(renderSlack(view))).toContain('d099.example.com');
    expect(JSON.stringify(renderDiscord(view))).toContain('d099.example.com');
  });
});
