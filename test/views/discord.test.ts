import type { APIEmbed } from 'discord-api-types/v10';
import { describe, expect, it } from 'vitest';
import { parseAction } from '../../src/views/actions.js';
import {
  discordMarkdown,
  discordUsage,
  embedLength,
  escapeDiscord,
  renderDiscord,
} from '../../src/views/discord.js';
import { b, c, t } from '../../src/views/format.js';
import { confirmationView, deploymentsView, progressView } from '../../src/views/model.js';
import type { ListItem, MessageView } from '../../src/views/types.js';
import { history, switchEntries } from './audit-entries.js';
import { assertValid, discordMessageSchema } from './blockkit.js';
import { catalog, routingOf } from './catalog.js';
import { alice, HOSTILE, NOW, plan, progress, snapshot } from './fixtures.js';

const MIN = 60_000;

function allText(e: APIEmbed): string {
  return [e.title ?? '', e.description ?? '', ...(e.fields ?? []).flatMap((f) => [f.name, f.value])].join(
    '\n',
  );
}

function unescapeDiscord(s: string): string {
  return s.replace(/\\([^A-Za-z0-9\s])/g, '$1');
}

describe('renderDiscord', () => {
  it.each(catalog())('%s is a valid Discord message that pings nobody', (_name, view) => {
    const msg = assertValid(discordMessageSchema, renderDiscord(view), 'discord message');
    expect(msg.allowed_mentions).toEqual({ parse: [] });
    for (const row of msg.components)
      for (const btn of row.components) expect(parseAction(btn.custom_id).ok).toBe(true);
  });

  it.each(catalog(398))('%s stays within embed limits with 400 domains', (_name, view) => {
    const msg = renderDiscord(view);
    assertValid(discordMessageSchema, msg, 'discord message');
    for (const e of msg.embeds) expect(embedLength(e)).toBeLessThanOrEqual(6000);
  });

  it('collapses 400 affected domains with the count', () => {
    const p = plan('rollback', { liveDomains: 398 });
    const msg = renderDiscord(confirmationView(p, { state: 'pending', now: NOW }));
    const field = msg.embeds[0]?.fields?.find((f) => f.name === 'Affected domains \\(400\\)');
    const lines = field?.value.split('\n') ?? [];
    const shown = lines.filter((l) => l.startsWith('• ')).length;
    expect(shown).toBeGreaterThan(0);
    expect(lines.at(-1)).toBe(`*…and ${400 - shown} more (400 in total)*`);
  });

  it('fits the 6000-character total by showing fewer items, keeping every count', () => {
    const items: ListItem[] = Array.from({ length: 400 }, (_, k) => ({
      spans: [c(`host-${k}.a-rather-long-domain-name.example.com`)],
    }));
    const base = confirmationView(plan('rollback'), { state: 'pending', now: NOW });
    const view: MessageView = {
      ...base,
      blocks: Array.from({ length: 10 }, (_, k) => ({ type: 'list' as const, label: `List ${k}`, items })),
    };
    const msg = renderDiscord(view);
    assertValid(discordMessageSchema, msg, 'discord message');
    const e = msg.embeds[0];
    if (e === undefined) throw new Error('no embed');
    expect(embedLength(e)).toBeLessThanOrEqual(6000);
    for (const f of e.fields ?? []) {
      const shown = f.value.split('\n').filter((l) => l.startsWith('• ')).length;
      expect(f.value).toContain(`*…and ${400 - shown} more (400 in total)*`);
    }
  });

  it('shrinks texts as a last resort to stay under 6000', () => {
    const base = confirmationView(plan('rollback'), { state: 'pending', now: NOW });
    const view: MessageView = {
      ...base,
      blocks: [
        ...Array.from({ length: 12 }, () => ({ type: 'text' as const, spans: [t('y'.repeat(4000))] })),
        ...Array.from({ length: 20 }, (_, k) => ({
          type: 'list' as const,
          label: `L${k}`,
          items: [{ spans: [t('z'.repeat(290))] }, { spans: [t('z'.repeat(290))] }],
        })),
      ],
    };
    assertValid(discordMessageSchema, renderDiscord(view), 'discord message');
  });

  it('escapes hostile commit messages and never pings', () => {
    const msg = renderDiscord(
      confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: alice }),
    );
    expect(msg.allowed_mentions.parse).toEqual([]);
    const field = msg.embeds[0]?.fields?.find((f) => f.name === 'Current deployment');
    const value = field?.value ?? '';
    expect(value).toContain('\\@everyone');
    expect(value).toContain('\\<\\@U123\\>');
    expect(value).toContain('\\<t:0:R\\>');
    expect(value).toContain('\\*b\\*');
    expect(value).toContain('\\|\\|s\\|\\|');
    expect(value).toContain('\\[l\\]\\(https://e.x\\)');
    expect(value).toContain('\\`t\\`');
    // every markdown character of the user text is escaped: nothing unescaped remains
    const messageLine = value.split('\n')[1] ?? '';
    expect(messageLine.slice(2)).not.toMatch(/(?<!\\)[*_~`|<>[\]()#@-]/);
    expect(unescapeDiscord(messageLine.slice(2))).toBe(HOSTILE);
  });

  it('escapes user text in /deployments rows and history lines', () => {
    const s = snapshot({ rolledBack: true });
    const v = deploymentsView(
      // A name the platform records for a move outside Switchyard is anyone's text too.
      {
        ...s,
        liveHistory: [
          ...s.liveHistory,
          { deploymentId: 'dep_3', since: NOW, via: 'promote', by: '<@&9> __z__' },
        ],
      },
      {
        routing: routingOf(s),
        audit: switchEntries({
          at: NOW - 10 * MIN,
          planId: 'p_1',
          targetId: 'dep_2',
          fromId: 'dep_3',
          alert: { title: '**x** ||y||', source: 'generic' },
          confirmed: { surface: 'system', userId: 'x', displayName: '@everyone <@&123>' },
        }),
        now: NOW,
      },
    );
    const text = allText(renderDiscord(v).embeds[0] ?? {});
    expect(text).toContain('by \\@everyone \\<\\@&123\\>');
    expect(text).toContain('alert "\\*\\*x\\*\\* \\|\\|y\\|\\|"');
    expect(text).toContain('by \\<\\@&9\\> \\_\\_z\\_\\_ \\(as the platform records it\\)');
    expect(text).not.toMatch(/(?<!\\)@everyone/);
  });

  it('/deployments shows every switch line of an incident: two people by mention, after an alert, beside ten deployments', () => {
    const alice = { surface: 'discord', userId: '112233445566778899', displayName: 'alice' } as const;
    const bob = { surface: 'discord', userId: '998877665544332211', displayName: 'bob' } as const;
    const s = snapshot({ rolledBack: true, extraDeployments: 10, liveDomains: 3 });
    const audit = history(
      ...Array.from({ length: 7 }, (_, k) =>
        switchEntries({
          at: NOW - (k + 1) * 20 * MIN,
          planId: `p_${k}`,
          targetId: 'dep_2mc5ty',
          fromId: 'dep_4kq9wz',
          alert: { title: 'High error rate on checkout (5xx > 2%)', source: 'alertmanager' },
          confirmed: alice,
          approved: bob,
        }),
      ),
    );
    const v = deploymentsView({ ...s, liveHistory: [] }, { routing: routingOf(s), audit, now: NOW });
    const msg = renderDiscord(v);
    assertValid(discordMessageSchema, msg, 'discord message');
    const field = msg.embeds[0]?.fields?.find((f) => f.name.startsWith('Switches'));
    expect(field?.name).toBe('Switches \\(latest 5\\)');
    // All five lines, none collapsed into "…and N more".
    expect(field?.value.split('\n')).toHaveLength(5);
    expect(field?.value).not.toContain('more (');
    expect(field?.value.split('\n')[0]).toBe(
      '✅ 2026\\-11\\-29 11:43 UTC · rollback `dep_4kq9wz` → `dep_2mc5ty` · **succeeded** · by <@112233445566778899>, approved by <@998877665544332211> · alert "High error rate on checkout \\(5x…"',
    );
  });

  it('a Switches field that cannot hold its five latest lines (Vercel-length ids) says how many more of them, never a total', () => {
    // Seven switches read, five kept by the view ("latest 5"): "(5 in total)" under them said five
    // were all there was.
    const alice = { surface: 'discord', userId: '112233445566778899', displayName: 'alice' } as const;
    const bob = { surface: 'discord', userId: '998877665544332211', displayName: 'bob' } as const;
    const s = snapshot({ rolledBack: true });
    const audit = history(
      ...Array.from({ length: 7 }, (_, k) =>
        switchEntries({
          at: NOW - (k + 1) * 20 * MIN,
          planId: `p_${k}`,
          targetId: 'dpl_8Ew6JzpGQFm3rQZb9T1k2v5nXyHc',
          fromId: 'dpl_3Lq7WmN2pRt5Xv8Yb1Cd4Fg6Hj9K',
          alert: { title: 'High error rate on checkout (5xx > 2%)', source: 'alertmanager' },
          confirmed: alice,
          approved: bob,
        }),
      ),
    );
    const v = deploymentsView({ ...s, liveHistory: [] }, { routing: routingOf(s), audit, now: NOW });
    const msg = assertValid(discordMessageSchema, renderDiscord(v), 'discord message');
    const field = msg.embeds[0]?.fields?.find((f) => f.name.startsWith('Switches'));
    expect(field?.name).toBe('Switches \\(latest 5\\)');
    const lines = field?.value.split('\n') ?? [];
    expect(lines.length).toBeLessThan(6);
    expect(lines[lines.length - 1]).toBe(`*…and ${6 - lines.length} more*`);
  });

  it('maps button styles and keeps custom ids', () => {
    const p = plan('rollback');
    const msg = renderDiscord(confirmationView(p, { state: 'pending', now: NOW }));
    expect(msg.components).toEqual([
      {
        type: 1,
        components: [
          { type: 2, style: 4, label: 'Rollback to target version', custom_id: `sy1:confirm:${p.id}` },
          { type: 2, style: 2, label: 'Cancel', custom_id: `sy1:cancel:${p.id}` },
        ],
      },
    ]);
    const promote = renderDiscord(
      confirmationView(plan('promote', { rolledBack: true }), { state: 'pending', now: NOW }),
    );
    expect(promote.components[0]?.components[0]?.style).toBe(1);
  });

  it('keeps at most 25 buttons in 5 rows and counts the rest', () => {
    const s = snapshot({ extraDeployments: 40 });
    const v = deploymentsView(s, { routing: [], audit: [], now: NOW, limit: 45 });
    const rowButtons = v.blocks.reduce(
      (n, bl) => n + (bl.type === 'rows' ? bl.rows.reduce((m, r) => m + r.buttons.length, 0) : 0),
      0,
    );
    expect(rowButtons).toBe(41);
    const msg = assertValid(discordMessageSchema, renderDiscord(v), 'discord message');
    expect(msg.components).toHaveLength(5);
    expect(msg.components.every((r) => r.components.length === 5)).toBe(true);
    const e = msg.embeds[0];
    expect(e?.description).toContain('16 more actions not shown as buttons (Discord allows 25)');
    expect(e?.fields).toHaveLength(25);
    expect(e?.fields?.at(-1)?.value).toContain('…and 23 more sections not shown (Discord allows 25 fields).');
  });

  it('message buttons win over row buttons when space runs out', () => {
    const base = confirmationView(plan('rollback'), { state: 'pending', now: NOW });
    const s = snapshot({ extraDeployments: 40 });
    const rows = deploymentsView(s, { routing: [], audit: [], now: NOW, limit: 45 }).blocks;
    const msg = renderDiscord({ ...base, blocks: rows });
    const ids = msg.components.flatMap((r) => r.components.map((x) => x.custom_id));
    expect(ids).toHaveLength(25);
    expect(ids.slice(-2)).toEqual(base.buttons.map((x) => x.actionId));
  });

  it('formats spans and usage', () => {
    expect(discordMarkdown([b('Now: '), t('a*b'), c('dep_1')])).toBe('**Now:** a\\*b`dep_1`');
    expect(discordMarkdown([c('a`b')])).toBe('a\\`b');
    expect(escapeDiscord('@here #x')).toBe('\\@here \\#x');
    expect(
      discordUsage('rollback', [
        { name: 'environment', placeholder: 'environment', required: true },
        { name: 'deployment', placeholder: 'deployment-id', required: false },
      ]),
    ).toBe('/rollback environment:<environment> [deployment:<deployment-id>]');
  });

  it('progress shows steps with durations in the description, a running one with when it started', () => {
    const p = plan('rollback');
    const msg = renderDiscord(progressView(progress(p), p));
    expect(msg.embeds[0]?.description).toContain('✅ Validating the plan — 1.2 s');
    expect(msg.embeds[0]?.description).toContain(
      '⏳ Reactivating standby target — since 12:00:01 UTC \\(running\\)',
    );
  });

  it('the Discord rules used above do reject broken messages', () => {
    const good = renderDiscord(confirmationView(plan('rollback'), { state: 'pending', now: NOW }));
    const cases: [string, Record<string, unknown>][] = [
      ['pinging', { ...good, allowed_mentions: { parse: ['everyone', 'nobody'] } }],
      [
        'long custom id',
        {
          ...good,
          components: [
            { type: 1, components: [{ type: 2, style: 1, label: 'x', custom_id: 'x'.repeat(101) }] },
          ],
        },
      ],
      [
        'six buttons in a row',
        {
          ...good,
          components: [
            {
              type: 1,
              components: Array.from({ length: 6 }, (_, k) => ({
                type: 2,
                style: 1,
                label: 'x',
                custom_id: `id${k}`,
              })),
            },
          ],
        },
      ],
      [
        'embed over 6000',
        {
          ...good,
          embeds: [
            {
              title: 'x',
              description: 'y'.repeat(4000),
              fields: [
                { name: 'a', value: 'b'.repeat(1024) },
                { name: 'a', value: 'b'.repeat(1024) },
              ],
            },
          ],
        },
      ],
      ['long field value', { ...good, embeds: [{ fields: [{ name: 'a', value: 'b'.repeat(1025) }] }] }],
      ['unknown key', { ...good, embeds: [{ titel: 'x' }] }],
    ];
    expect(() => assertValid(discordMessageSchema, good, 'good')).not.toThrow();
    for (const [name, bad] of cases)
      expect(() => assertValid(discordMessageSchema, bad, name), name).toThrow(/breaks the platform rules/);
  });
});
