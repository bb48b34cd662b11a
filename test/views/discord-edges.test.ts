import { describe, expect, it } from 'vitest';
import { RefusalCode } from '../../src/domain/result.js';
import { embedLength, renderDiscord } from '../../src/views/discord.js';
import { c } from '../../src/views/format.js';
import { confirmationView, deploymentsView, progressView, refusalView } from '../../src/views/model.js';
import type { MessageView, ViewBlock } from '../../src/views/types.js';
import { assertValid, discordMessageSchema } from '../views/blockkit.js';
import { routingOf } from '../views/catalog.js';
import { alice, NOW, plan, progress, snapshot } from '../views/fixtures.js';
import { deploymentsTruncated, deploymentsWithLongId } from './long-id.js';

function view(over: Partial<MessageView>): MessageView {
  return {
    kind: 'notice',
    tone: 'info',
    title: 'T',
    summary: 'S',
    blocks: [],
    buttons: [],
    ephemeral: false,
    ...over,
  };
}

function allText(msg: ReturnType<typeof renderDiscord>): string {
  const e = msg.embeds[0];
  return [e?.title ?? '', e?.description ?? '', ...(e?.fields ?? []).flatMap((f) => [f.name, f.value])].join(
    '\n',
  );
}

describe('renderDiscord', () => {
  it('a deployment without commit message or author (Unkey) shows neither: no filler, no empty "by", no empty quote', () => {
    const s = snapshot({ shaOnly: true });
    const fields = (msg: ReturnType<typeof renderDiscord>) =>
      (msg.embeds[0]?.fields ?? []).map((f) => `${f.name}: ${f.value}`);
    expect(
      fields(renderDiscord(deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW }))),
    ).toContain(
      'dep\\_3 · ready · live: `de3abcd` · main · serves 5 domains\nlive for 37 minutes · created 40 minutes ago',
    );
    const confirmation = renderDiscord(
      confirmationView(plan('rollback', { shaOnly: true }), {
        state: 'pending',
        now: NOW,
        requestedBy: alice,
      }),
    );
    expect(fields(confirmation)).toContain(
      'Current deployment: `dep_3` · `de3abcd` · main · ready\nlive for 37 minutes · created 40 minutes ago',
    );
  });

  it('a list of long items stays within a field value (1024) and says how many it left out', () => {
    const items = Array.from({ length: 15 }, (_, k) => ({
      spans: [c(`host-${k}-${'a'.repeat(60)}.example.com`)],
    }));
    const msg = assertValid(
      discordMessageSchema,
      renderDiscord(view({ blocks: [{ type: 'list', label: 'Domains', items }] })),
      'discord message',
    );
    const value = msg.embeds[0]?.fields?.[0]?.value ?? '';
    expect(value.length).toBeLessThanOrEqual(1024);
    expect(value).toMatch(/…and \d+ more \(15 in total\)/);
  });

  it('26 sections become 24 and a line counting the 2 left out (Discord allows 25 fields)', () => {
    const blocks: ViewBlock[] = Array.from({ length: 26 }, (_, k) => ({
      type: 'list' as const,
      label: `List ${k}`,
      items: [{ spans: [c(`item ${k}`)] }],
    }));
    const msg = assertValid(discordMessageSchema, renderDiscord(view({ blocks })), 'discord message');
    const fields = msg.embeds[0]?.fields ?? [];
    expect(fields).toHaveLength(25);
    expect(fields[24]?.value).toContain('…and 2 more sections not shown');
  });

  it('a queued switch waiting for another says since when, not a frozen elapsed time', () => {
    const p = plan('rollback');
    const msg = renderDiscord(
      progressView(
        progress(p, {
          steps: [
            {
              step: 'queued',
              state: 'running',
              startedAt: NOW + 5_000,
              detail: 'Waiting: another production switch is running',
            },
          ],
          updatedAt: NOW + 5_013,
        }),
        p,
      ),
    );
    expect(msg.embeds[0]?.description).toContain(
      '⏳ Queued — since 12:00:05 UTC \\(running\\): Waiting: another production switch is running',
    );
  });

  it('/deployments says as of when a switch was running (the message is never edited when it ends)', () => {
    const s = snapshot();
    const msg = renderDiscord(
      deploymentsView(s, {
        routing: routingOf(s),
        audit: [],
        now: NOW + 65_000,
        activeJob: { action: 'rollback', targetId: 'dep_2', startedAt: NOW },
      }),
    );
    expect(msg.embeds[0]?.description).toContain(
      'started 1 minute ago, as of 12:01:05 UTC when this list was read. Buttons are hidden while it runs: run /deployments production again once it ends.',
    );
  });

  it('embedLength counts the title', () => {
    expect(embedLength({ title: 'abc', description: 'de' })).toBe(5);
  });

  it('a long refusal message and a long title stay within the description (4096) and title (256) limits', () => {
    const v = refusalView({ code: RefusalCode.invalidInput, message: 'x'.repeat(5000) });
    assertValid(discordMessageSchema, renderDiscord(v), 'discord message');
    assertValid(discordMessageSchema, renderDiscord(view({ title: 'y'.repeat(300) })), 'discord message');
  });

  it('a /deployments read cut at the adapter limit says more exist even when every deployment read is listed', () => {
    expect(allText(renderDiscord(deploymentsTruncated()))).toContain('deployments read');
  });

  it('a row whose id does not fit a button says what to type instead', () => {
    expect(allText(renderDiscord(deploymentsWithLongId()))).toContain('type /promote with it instead');
  });

  it("the current deployment's card says how long it is live", () => {
    const msg = renderDiscord(
      confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: alice }),
    );
    expect(allText(msg)).toContain('live for 37 minutes');
  });
});
