import type { KnownBlock } from '@slack/types';
import { describe, expect, it } from 'vitest';
import { parseAction } from '../../src/views/actions.js';
import { b, c, person, t } from '../../src/views/format.js';
import { confirmationView, progressView, refusalView } from '../../src/views/model.js';
import { escapeMrkdwn, mrkdwn, renderSlack, slackUsage } from '../../src/views/slack.js';
import type { MessageView } from '../../src/views/types.js';
import { assertValid, slackMessageSchema } from './blockkit.js';
import { catalog } from './catalog.js';
import { alice, bob, HOSTILE, NOW, plan, progress } from './fixtures.js';

/** Every mrkdwn/plain text string in the blocks. */
function texts(blocks: readonly KnownBlock[]): { type: string; text: string; verbatim?: boolean }[] {
  const out: { type: string; text: string; verbatim?: boolean }[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    const o = v as Record<string, unknown>;
    if ((o.type === 'mrkdwn' || o.type === 'plain_text') && typeof o.text === 'string') {
      out.push({
        type: o.type,
        text: o.text,
        ...(typeof o.verbatim === 'boolean' ? { verbatim: o.verbatim } : {}),
      });
      return;
    }
    for (const x of Object.values(o)) visit(x);
  };
  visit(blocks);
  return out;
}

function unescapeMrkdwn(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function buttonIds(blocks: readonly KnownBlock[]): string[] {
  return blocks.flatMap((bl) => {
    if (bl.type === 'actions') return bl.elements.map((e) => ('action_id' in e ? (e.action_id ?? '') : ''));
    if (bl.type === 'section' && bl.accessory !== undefined && 'action_id' in bl.accessory) {
      return [bl.accessory.action_id ?? ''];
    }
    return [];
  });
}

describe('renderSlack', () => {
  it.each(catalog())('%s is valid Block Kit with parseable action ids', (_name, view) => {
    const msg = assertValid(slackMessageSchema, renderSlack(view), 'slack message');
    expect(msg.text.length).toBeGreaterThan(0);
    expect(msg.blocks[0]?.type).toBe('header');
    const ids = buttonIds(renderSlack(view).blocks);
    for (const id of ids) expect(parseAction(id).ok).toBe(true);
    const expected =
      view.buttons.length +
      view.blocks.reduce(
        (n, bl) => n + (bl.type === 'rows' ? bl.rows.reduce((m, r) => m + r.buttons.length, 0) : 0),
        0,
      );
    if (expected <= 20) expect(ids).toHaveLength(expected);
  });

  it.each(catalog(398))('%s stays valid with 400 domains', (_name, view) => {
    assertValid(slackMessageSchema, renderSlack(view), 'slack message');
  });

  it('collapses 400 affected domains with the count, never silently', () => {
    const p = plan('rollback', { liveDomains: 398 });
    const msg = renderSlack(confirmationView(p, { state: 'pending', now: NOW }));
    const list = texts(msg.blocks).find((x) => x.text.startsWith('*Affected domains (400)*'));
    expect(list).toBeDefined();
    const lines = list?.text.split('\n') ?? [];
    const shown = lines.filter((l) => l.startsWith('• ')).length;
    expect(shown).toBe(15);
    expect(lines.at(-1)).toBe('_…and 385 more (400 in total)_');
    const fewer = renderSlack(confirmationView(p, { state: 'pending', now: NOW }), { maxListItems: 3 });
    expect(texts(fewer.blocks).some((x) => x.text.endsWith('_…and 397 more (400 in total)_'))).toBe(true);
  });

  it('keeps a list inside the 3000-character section limit whatever the item count asked', () => {
    const p = plan('rollback', { liveDomains: 398 });
    const msg = renderSlack(confirmationView(p, { state: 'pending', now: NOW }), { maxListItems: 1000 });
    assertValid(slackMessageSchema, msg, 'slack message');
    const list = texts(msg.blocks).find((x) => x.text.startsWith('*Affected domains (400)*'));
    const lines = list?.text.split('\n') ?? [];
    const shown = lines.filter((l) => l.startsWith('• ')).length;
    expect(shown).toBeGreaterThan(15);
    expect(lines.at(-1)).toBe(`_…and ${400 - shown} more (400 in total)_`);
  });

  it('escapes hostile commit messages: no mention, link or entity survives', () => {
    const msg = renderSlack(
      confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: alice }),
      { mentions: true },
    );
    const mrk = texts(msg.blocks).filter((x) => x.type === 'mrkdwn');
    for (const x of mrk) {
      // The one `<` allowed: the requester's own mention (a person span), never one from user text.
      expect(x.text.replace('Requested by <@U1>', '')).not.toMatch(/</);
      expect(x.text).not.toMatch(/&(?!amp;|lt;|gt;)/);
      expect(x.verbatim).toBe(true);
    }
    const card = mrk.find((x) => x.text.startsWith('*Current deployment*'));
    expect(card?.text).toContain('&lt;!channel&gt;');
    expect(card?.text).toContain('&lt;@U123&gt;');
    expect(card?.text).toContain('&lt;https://evil.example|x&gt;');
    expect(card?.text).toContain(' &amp; ');
    expect(unescapeMrkdwn(card?.text ?? '')).toContain(HOSTILE);
  });

  it('escapes user text in the fallback text too', () => {
    const msg = renderSlack(refusalView({ code: 'invalid_input', message: 'Bad "<!channel>" & <@U1>' }));
    expect(msg.text).toBe('Invalid input: Bad "&lt;!channel&gt;" &amp; &lt;@U1&gt;');
  });

  it('names Slack people by name unless asked for mentions: a posted mention notifies (Slack has no allowed_mentions)', () => {
    // The two-person prompt names the asker and the confirmer; rendered for a post, neither is pinged.
    const v = confirmationView(plan('rollback'), {
      state: 'awaiting_approval',
      now: NOW,
      askedBy: alice,
      requestedBy: bob,
    });
    const posted = renderSlack(v);
    expect(JSON.stringify(posted)).not.toContain('<@');
    expect(JSON.stringify(posted.blocks)).toContain('Requested by Alice, confirmed by Bob.');
    expect(JSON.stringify(renderSlack(v, { mentions: false }))).not.toContain('<@');
    // For an edit (chat.update, which notifies nobody): mentions, in mrkdwn only (never the fallback text).
    const edited = renderSlack(v, { mentions: true });
    expect(JSON.stringify(edited.blocks)).toContain('Requested by <@U1>, confirmed by <@U2>.');
    expect(edited.text).not.toContain('<@');
    // Every place a person span renders: lists (an audit's activity) and styled spans too.
    const list: MessageView = {
      ...v,
      blocks: [
        {
          type: 'list',
          label: 'Recent activity',
          items: [{ spans: [b('rollback'), t(' by '), person(alice)] }],
        },
      ],
    };
    expect(JSON.stringify(renderSlack(list).blocks)).toContain('*rollback* by Alice');
    expect(JSON.stringify(renderSlack(list, { mentions: true }).blocks)).toContain('*rollback* by <@U1>');
    expect(mrkdwn([{ ...person(alice), style: 'bold' }])).toBe('*Alice*');
    expect(mrkdwn([{ ...person(alice), style: 'bold' }], { mentions: true })).toBe('<@U1>');
    // A person of another surface reads the same either way.
    const dora = person({ surface: 'discord', userId: '112233445566778899', displayName: 'dora' });
    expect(mrkdwn([dora])).toBe('dora (on Discord)');
    expect(mrkdwn([dora], { mentions: true })).toBe('dora (on Discord)');
  });

  it('formats spans: whitespace stays outside markers, markers inside text fall back to plain', () => {
    expect(mrkdwn([b('Alert: '), t('x')])).toBe('*Alert:* x');
    expect(mrkdwn([c('a`b')])).toBe('a`b');
    expect(mrkdwn([b('2*3')])).toBe('2*3');
    expect(mrkdwn([c('<x>')])).toBe('`&lt;x&gt;`');
    expect(escapeMrkdwn('a & b < c > d')).toBe('a &amp; b &lt; c &gt; d');
  });

  it('the confirm button is danger with a Slack confirm dialog', () => {
    const msg = renderSlack(confirmationView(plan('rollback'), { state: 'pending', now: NOW }));
    const last = msg.blocks.at(-1);
    expect(last?.type).toBe('actions');
    if (last?.type !== 'actions') return;
    const [confirm, cancel] = last.elements;
    expect(confirm).toMatchObject({
      type: 'button',
      style: 'danger',
      text: { type: 'plain_text', text: 'Rollback to target version' },
      confirm: { title: { text: 'Roll back production to dep_2?' }, style: 'danger' },
    });
    expect(cancel).toMatchObject({ text: { text: 'Cancel' } });
    expect(cancel && 'style' in cancel ? cancel.style : undefined).toBeUndefined();
  });

  it('never exceeds 50 blocks and says how many were left out', () => {
    const p = plan('rollback');
    const base = confirmationView(p, { state: 'pending', now: NOW });
    const huge: MessageView = {
      ...base,
      blocks: Array.from({ length: 80 }, (_, k) => ({ type: 'text' as const, spans: [t(`paragraph ${k}`)] })),
    };
    const msg = assertValid(slackMessageSchema, renderSlack(huge), 'slack message');
    expect(msg.blocks).toHaveLength(50);
    expect(msg.blocks.at(-1)?.type).toBe('actions');
    const note = texts(renderSlack(huge).blocks).find((x) => x.text.includes('more blocks not shown'));
    // 50 = header + 46 kept + note + divider + actions: 80 - 46 = 34 left out
    expect(note?.text).toBe('_…and 34 more blocks not shown (Slack allows 50 per message)._');
  });

  it('truncates oversize texts to the documented limits', () => {
    const p = plan('rollback');
    const base = confirmationView(p, { state: 'pending', now: NOW });
    const first = base.buttons[0];
    if (first === undefined) throw new Error('no button');
    const long: MessageView = {
      ...base,
      title: 'T'.repeat(400),
      blocks: [{ type: 'text', spans: [t('x'.repeat(9000))] }],
      buttons: [
        {
          ...first,
          label: 'L'.repeat(200),
          confirm: {
            title: 'a'.repeat(200),
            text: 'b'.repeat(900),
            confirm: 'c'.repeat(60),
            deny: 'd'.repeat(60),
          },
        },
      ],
    };
    const msg = assertValid(slackMessageSchema, renderSlack(long), 'slack message');
    expect(msg.blocks[0]?.type === 'header' && msg.blocks[0].text.text.length).toBe(150);
  });

  it('progress lists each step with its duration, a running one with when it started', () => {
    const p = plan('rollback');
    const msg = renderSlack(progressView(progress(p), p));
    const steps = texts(msg.blocks).find((x) => x.text.includes('Validating the plan'));
    expect(steps?.text.split('\n')).toEqual([
      ':white_check_mark: Queued — 120 ms',
      ':white_check_mark: Validating the plan — 1.2 s',
      ':hourglass_flowing_sand: Reactivating standby target — since 12:00:01 UTC (running)',
      ':white_circle: Switching domains',
      ':white_circle: Verifying traffic',
      ':white_circle: Done',
    ]);
  });

  it('usage uses Slack slash-command syntax', () => {
    expect(
      slackUsage('rollback', [
        { name: 'environment', placeholder: 'environment', required: true },
        { name: 'deployment', placeholder: 'deployment-id', required: false },
      ]),
    ).toBe('/rollback <environment> [deployment-id]');
  });

  it('the Block Kit rules used above do reject broken messages', () => {
    const good = renderSlack(confirmationView(plan('rollback'), { state: 'pending', now: NOW }));
    const clone = (): { text: string; blocks: Record<string, unknown>[] } => JSON.parse(JSON.stringify(good));
    const cases: [string, (m: { text: string; blocks: Record<string, unknown>[] }) => void][] = [
      [
        'no fallback text',
        (m) => {
          m.text = '';
        },
      ],
      [
        'unknown block type',
        (m) => {
          m.blocks.push({ type: 'table' });
        },
      ],
      [
        'section without text',
        (m) => {
          m.blocks.push({ type: 'section' });
        },
      ],
      [
        'header in mrkdwn',
        (m) => {
          m.blocks.push({ type: 'header', text: { type: 'mrkdwn', text: 'x' } });
        },
      ],
      [
        '51 blocks',
        (m) => {
          for (let k = 0; k < 51; k++) m.blocks.push({ type: 'divider' });
        },
      ],
      [
        'long button text',
        (m) => {
          m.blocks.push({
            type: 'actions',
            elements: [
              { type: 'button', text: { type: 'plain_text', text: 'x'.repeat(76) }, action_id: 'a' },
            ],
          });
        },
      ],
      [
        'duplicate action id in an accessory',
        (m) => {
          const last = m.blocks.at(-1) as { elements?: unknown[] } | undefined;
          m.blocks.push({
            type: 'section',
            text: { type: 'mrkdwn', text: 'x' },
            accessory: last?.elements?.[0],
          });
        },
      ],
      [
        'duplicate action id',
        (m) => {
          const last = m.blocks.at(-1);
          if (last) m.blocks.push(last);
        },
      ],
      [
        'unknown key',
        (m) => {
          m.blocks.push({ type: 'divider', colour: 'red' });
        },
      ],
      [
        'verbatim on plain text',
        (m) => {
          m.blocks.push({ type: 'context', elements: [{ type: 'plain_text', text: 'x', verbatim: true }] });
        },
      ],
      [
        'confirm text over 300',
        (m) => {
          m.blocks.push({
            type: 'actions',
            elements: [
              {
                type: 'button',
                text: { type: 'plain_text', text: 'x' },
                action_id: 'z',
                confirm: {
                  title: { type: 'plain_text', text: 't' },
                  text: { type: 'plain_text', text: 'y'.repeat(301) },
                  confirm: { type: 'plain_text', text: 'ok' },
                  deny: { type: 'plain_text', text: 'no' },
                },
              },
            ],
          });
        },
      ],
    ];
    expect(() => assertValid(slackMessageSchema, clone(), 'good')).not.toThrow();
    for (const [name, breakIt] of cases) {
      const m = clone();
      breakIt(m);
      expect(() => assertValid(slackMessageSchema, m, name), name).toThrow(/breaks the platform rules/);
    }
  });
});
