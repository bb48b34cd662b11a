import { describe, expect, it } from 'vitest';
import { confirmationView, deploymentsView, progressView } from '../../src/views/model.js';
import { mrkdwn, renderSlack } from '../../src/views/slack.js';
import { history, switchEntries } from '../views/audit-entries.js';
import { assertValid, slackMessageSchema } from '../views/blockkit.js';
import { routingOf } from '../views/catalog.js';
import { alice, NOW, plan, progress, snapshot } from '../views/fixtures.js';
import { deploymentsWithLongId } from './long-id.js';

function allText(msg: { blocks: readonly unknown[] }): string {
  return JSON.stringify(msg.blocks);
}

describe('renderSlack', () => {
  it('a deployment without commit message or author (Unkey) shows neither: no filler, no empty "by", no dangling " — "', () => {
    const s = snapshot({ shaOnly: true });
    const texts = (msg: ReturnType<typeof renderSlack>) =>
      msg.blocks.flatMap((b) => (b.type === 'section' && b.text !== undefined ? [b.text.text] : []));
    const rows = texts(renderSlack(deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW })));
    expect(rows).toContain(
      '*`dep_3`* · `de3abcd` · main · ready · *live* · serves 5 domains\nlive for 37 minutes · created 40 minutes ago',
    );
    const cards = texts(
      renderSlack(
        confirmationView(plan('rollback', { shaOnly: true }), {
          state: 'pending',
          now: NOW,
          requestedBy: alice,
        }),
      ),
    );
    expect(cards).toContain(
      '*Current deployment*\n`dep_3` · `de3abcd` · main · ready · live for 37 minutes\ncreated 40 minutes ago',
    );
  });

  it("the confirmation's cards show how long the current deployment is live and the target's standby note", () => {
    const p = plan('rollback');
    const msg = assertValid(
      slackMessageSchema,
      renderSlack(confirmationView(p, { state: 'pending', now: NOW, requestedBy: alice })),
      'slack message',
    );
    expect(allText(msg)).toContain('live for 37 minutes');
    expect(allText(msg)).toContain(':hourglass: _in standby: reactivation takes longer_');
  });

  it('a step shows its detail', () => {
    const p = plan('rollback');
    const pr = progress(p, {
      steps: [
        { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 120 },
        {
          step: 'validating',
          state: 'done',
          startedAt: NOW + 120,
          endedAt: NOW + 1320,
          detail: 'target checked',
        },
      ],
    });
    expect(allText(renderSlack(progressView(pr, p)))).toContain('target checked');
  });

  it("a resume's final message: its step says what it does, no domain list, each domain of a rollback once, and when it ended", () => {
    const p = plan('promote', { rolledBack: true, target: 'dep_2' });
    const resume = allText(
      renderSlack(
        progressView(
          progress(p, {
            steps: [
              { step: 'queued', state: 'done', startedAt: NOW, endedAt: NOW + 10 },
              { step: 'switching', state: 'done', startedAt: NOW + 10, endedAt: NOW + 513 },
            ],
            outcome: 'succeeded',
            note: 'dep_2 stays live and no domain moved. Automatic deploys resume with the next successful deployment.',
          }),
        ),
      ),
    );
    expect(resume).toContain(':white_check_mark: Resuming automatic deploys — 503 ms');
    expect(resume).not.toContain('Switching domains');
    expect(resume).not.toContain('Domains (0)');
    expect(resume).toContain('as of 2026-11-29 12:00 UTC, when the job ended.');
    const rb = plan('rollback');
    const done = allText(
      renderSlack(
        progressView(
          progress(rb, {
            outcome: 'succeeded',
            message:
              'Rolled back production to dep_2: its 1 domain answers from it (demo.example.com → dep_2).',
            note: 'Its 1 domain answers from it.',
            traffic: [{ hostname: 'demo.example.com', deploymentId: 'dep_2', ok: true }],
          }),
          rb,
        ),
      ),
    );
    expect(done.split('demo.example.com')).toHaveLength(2);
  });

  it('a row whose id does not fit a button says why (and what to type instead)', () => {
    const msg = assertValid(slackMessageSchema, renderSlack(deploymentsWithLongId()), 'slack message');
    expect(allText(msg)).toContain('type /promote with it instead');
  });

  it('primary buttons keep their style (Promote), default ones carry none', () => {
    const p = plan('promote', { rolledBack: true });
    const msg = renderSlack(confirmationView(p, { state: 'pending', now: NOW, requestedBy: alice }));
    const actions = msg.blocks.find((b) => b.type === 'actions');
    const elements = actions?.type === 'actions' ? actions.elements : [];
    expect(elements.map((e) => ('style' in e ? e.style : undefined))).toEqual(['primary', undefined]);
  });

  it('mentions only Slack people: a console user whose name looks like a Slack id is named, never mentioned', () => {
    const out = mrkdwn([{ text: 'UADMIN', person: { surface: 'console', userId: 'UADMIN' } }], {
      mentions: true,
    });
    expect(out).toBe('UADMIN (on the console)');
  });

  it('a cut Switches list (its latest 5 of 7 read) says how many more of them, never a total', () => {
    // As on Discord: "(5 in total)" under the latest five said five were all there was.
    const s = snapshot({ rolledBack: true });
    const audit = history(
      ...Array.from({ length: 7 }, (_, k) =>
        switchEntries({
          at: NOW - (k + 1) * 20 * 60_000,
          planId: `p_${k}`,
          targetId: 'dep_2mc5ty',
          fromId: 'dep_4kq9wz',
          confirmed: alice,
        }),
      ),
    );
    const v = deploymentsView({ ...s, liveHistory: [] }, { routing: routingOf(s), audit, now: NOW });
    const msg = assertValid(slackMessageSchema, renderSlack(v, { maxListItems: 2 }), 'slack message');
    const section = msg.blocks.find(
      (b) => b.type === 'section' && b.text?.text.startsWith('*Switches (latest 5)*') === true,
    );
    const lines = section?.type === 'section' ? (section.text?.text.split('\n') ?? []) : [];
    expect(lines).toHaveLength(4);
    expect(lines.at(-1)).toBe('_…and 3 more_');
  });

  it('a Slack user id with mrkdwn control characters is never written as a mention', () => {
    for (const userId of ['U1><!channel', 'U1>', 'U1<!']) {
      const out = mrkdwn([{ text: 'Eve', person: { surface: 'slack', userId } }], { mentions: true });
      expect(out, userId).toBe('Eve');
    }
  });
});
