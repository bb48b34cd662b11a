/**
 * The closed views of a "ready but not live" notice and a rolled-back reminder (src/views/model.ts
 * `closedNoticeView`): one line saying what ended the rolled-back period, only what the sources said
 * (no time or name when none is known), no buttons; every surface renders them within its rules.
 */
import { describe, expect, it } from 'vitest';
import { consoleMessageSchema, renderConsole } from '../../src/views/console.js';
import { renderDiscord } from '../../src/views/discord.js';
import { type ClosedNotice, closedNoticeView, type RolledBackEnd } from '../../src/views/model.js';
import { renderSlack } from '../../src/views/slack.js';
import { assertValid, discordMessageSchema, slackMessageSchema } from '../views/blockkit.js';
import { HOSTILE, NOW, snapshot } from '../views/fixtures.js';
import { viewText } from './world.js';

const MIN = 60_000;
const s = snapshot({ rolledBack: true });
const dep = (id: string) => {
  const d = s.deployments.find((x) => x.id === id);
  if (!d) throw new Error(id);
  return d;
};

const offer = (end: RolledBackEnd, deployment = dep('dep_6')): ClosedNotice => ({
  type: 'ready.not_live',
  environment: 'production',
  deployment,
  rolledBackTo: { id: 'dep_2' },
  end,
});

const reminder = (end: RolledBackEnd, by?: string): ClosedNotice => ({
  type: 'rolled_back.reminder',
  environment: 'production',
  current: { id: 'dep_2' },
  since: NOW - 23 * MIN, // 11:37 UTC
  ...(by === undefined ? {} : { by }),
  end,
});

describe('closedNoticeView', () => {
  it('the deployment that went live', () => {
    const v = closedNoticeView(offer({ kind: 'promoted', to: 'dep_6', at: NOW, by: 'Alice' }));
    expect(v.title).toBe('dep_6 went live on production');
    expect(v.tone).toBe('success');
    expect(v.summary).toBe('dep_6 went live on production (promoted at 2026-11-29 12:00 UTC by Alice).');
    expect(viewText(v)).toContain('dep_6 (');
    expect(viewText(v)).toContain(' went live: promoted at 2026-11-29 12:00 UTC by Alice.');
    expect(viewText(v)).toContain('Was ready but not live while production was rolled back to dep_2.');
    expect(v.buttons).toEqual([]);
    // rolled back (forward) to it: it went live, and says how
    expect(closedNoticeView(offer({ kind: 'rolled_back', to: 'dep_6' })).summary).toBe(
      'dep_6 went live on production (rolled back to it).',
    );
  });

  it('a deployment that did not go live says what happened instead', () => {
    const cases: [RolledBackEnd, string][] = [
      [
        { kind: 'promoted', to: 'dep_5', at: NOW, by: 'Alice' },
        'dep_6 did not go live: production was promoted to dep_5 at 2026-11-29 12:00 UTC by Alice.',
      ],
      [{ kind: 'promoted', to: 'dep_5' }, 'dep_6 did not go live: production was promoted to dep_5.'],
      [
        { kind: 'resumed', at: NOW, by: 'Alice' },
        'dep_6 did not go live: automatic deploys resumed on production at 2026-11-29 12:00 UTC by Alice; dep_2 stayed live.',
      ],
      [
        { kind: 'resumed', deployed: 'dep_7' },
        'dep_6 did not go live: automatic deploys resumed on production; dep_2 stayed live until dep_7 went live by an automatic deploy.',
      ],
      [
        { kind: 'rolled_back', to: 'dep_1', at: NOW },
        'dep_6 did not go live: production was rolled back to dep_1 at 2026-11-29 12:00 UTC.',
      ],
      [
        { kind: 'rolled_back', to: 'dep_2', at: NOW },
        'dep_6 did not go live: production was rolled back again to dep_2 at 2026-11-29 12:00 UTC.',
      ],
    ];
    for (const [end, summary] of cases) {
      const v = closedNoticeView(offer(end));
      expect(v.title).toBe('dep_6 did not go live on production');
      expect(v.tone).toBe('neutral');
      expect(v.summary).toBe(summary);
      expect(v.buttons).toEqual([]);
    }
  });

  it('when nothing says whether it went live during the period, it says how the period ended, no more', () => {
    const cases: [RolledBackEnd, string][] = [
      [
        { kind: 'rolled_back', to: 'dep_1', at: NOW, uncertain: true },
        'dep_6: the rollback of production to dep_2 ended: production was rolled back to dep_1 at 2026-11-29 12:00 UTC.',
      ],
      [
        { kind: 'promoted', to: 'dep_5', uncertain: true },
        'dep_6: the rollback of production to dep_2 ended: production was promoted to dep_5.',
      ],
      [
        { kind: 'resumed', uncertain: true },
        'dep_6: the rollback of production to dep_2 ended: automatic deploys resumed on production; dep_2 is live.',
      ],
      [
        { kind: 'resumed', uncertain: true, deployed: 'dep_7' },
        'dep_6: the rollback of production to dep_2 ended: automatic deploys resumed on production; then dep_7 went live by an automatic deploy.',
      ],
      [{ kind: 'over' }, 'dep_6: the rollback of production to dep_2 ended.'],
      // Another deployment is live, and nothing says how it got there (a promote, or a deploy after a
      // resume): not said to be promoted.
      [{ kind: 'over', live: 'dep_7' }, 'dep_6: the rollback of production to dep_2 ended; dep_7 is live.'],
    ];
    for (const [end, summary] of cases) {
      const v = closedNoticeView(offer(end));
      expect(v.title).toBe('dep_6: the rollback of production ended');
      expect(v.tone).toBe('neutral');
      expect(v.summary).toBe(summary);
      expect(viewText(v)).not.toMatch(/did not go live|stayed live/);
      expect(viewText(v)).toContain('Was ready but not live while production was rolled back to dep_2.');
      expect(v.buttons).toEqual([]);
    }
    // It is live now: that much is known, whatever happened in between.
    expect(closedNoticeView(offer({ kind: 'promoted', to: 'dep_6', uncertain: true })).title).toBe(
      'dep_6 went live on production',
    );
  });

  it('a reminder says how long the rollback lasted and how it ended', () => {
    const v = closedNoticeView(reminder({ kind: 'promoted', to: 'dep_6', at: NOW, by: 'Alice' }, 'Dana'));
    expect(v.title).toBe('production was rolled back to dep_2');
    expect(v.summary).toBe(
      'production was rolled back to dep_2 from 2026-11-29 11:37 UTC to 12:00 UTC (23 minutes) (promoted to dep_6).',
    );
    expect(viewText(v)).toContain(
      'production was rolled back to dep_2 from 2026-11-29 11:37 UTC to 12:00 UTC (23 minutes), by Dana. Ended: promoted to dep_6 by Alice.',
    );
    expect(v.buttons).toEqual([]);
    // The end on another day is written in full; an end whose time nobody knows is left out.
    expect(closedNoticeView(reminder({ kind: 'resumed', at: NOW + 24 * 60 * MIN })).summary).toBe(
      'production was rolled back to dep_2 from 2026-11-29 11:37 UTC to 2026-11-30 12:00 UTC (1 day) (automatic deploys resumed).',
    );
    expect(viewText(closedNoticeView(reminder({ kind: 'resumed' })))).toContain(
      'production was rolled back to dep_2 from 2026-11-29 11:37 UTC. Ended: automatic deploys resumed.',
    );
    // A deploy that followed the resume before the end was seen comes after who resumed.
    const deployed = closedNoticeView(reminder({ kind: 'resumed', at: NOW, by: 'Alice', deployed: 'dep_7' }));
    expect(deployed.summary).toBe(
      'production was rolled back to dep_2 from 2026-11-29 11:37 UTC to 12:00 UTC (23 minutes) (automatic deploys resumed; then dep_7 went live by an automatic deploy).',
    );
    expect(viewText(deployed)).toContain(
      'Ended: automatic deploys resumed by Alice; then dep_7 went live by an automatic deploy.',
    );
    expect(viewText(closedNoticeView(reminder({ kind: 'over', live: 'dep_7' })))).toContain(
      'Ended: production is no longer rolled back; dep_7 is live.',
    );
  });

  it('every surface renders them, without buttons, escaping what users wrote', () => {
    const hostile = { ...dep('dep_6'), commit: { ...dep('dep_6').commit, message: HOSTILE } };
    const views = [
      closedNoticeView(offer({ kind: 'promoted', to: 'dep_6', at: NOW, by: HOSTILE }, hostile)),
      closedNoticeView(offer({ kind: 'resumed', by: HOSTILE }, hostile)),
      closedNoticeView(offer({ kind: 'resumed', by: HOSTILE, deployed: 'dep_7' }, hostile)),
      closedNoticeView(reminder({ kind: 'over', live: 'dep_7' }, HOSTILE)),
      closedNoticeView(reminder({ kind: 'rolled_back', to: 'dep_1', at: NOW, by: HOSTILE }, HOSTILE)),
    ];
    for (const view of views) {
      const slack = assertValid(slackMessageSchema, renderSlack(view), 'slack message');
      expect(JSON.stringify(slack.blocks)).not.toContain('"actions"');
      expect(JSON.stringify(slack)).not.toContain('<!channel>');
      const discord = assertValid(discordMessageSchema, renderDiscord(view), 'discord message');
      expect(discord.components).toEqual([]);
      expect(discord.allowed_mentions).toEqual({ parse: [] });
      const console = renderConsole(view);
      expect(consoleMessageSchema.parse(JSON.parse(JSON.stringify(console)))).toEqual(console);
      expect(console.buttons).toEqual([]);
    }
  });
});
