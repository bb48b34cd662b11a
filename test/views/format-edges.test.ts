import { describe, expect, it } from 'vitest';
import { discordMarkdown } from '../../src/views/discord.js';
import { fitLines, splitSpace } from '../../src/views/format.js';
import { mrkdwn } from '../../src/views/slack.js';

const more = (rest: number, total: number) => `…and ${rest} more (${total} in total)`;

describe('fitLines', () => {
  it('says "…and 1 more" when exactly one item is left out, never a silent cut', () => {
    const lines = fitLines(['a', 'b', 'c'], (s) => s, { budget: 1000, maxItems: 2, more });
    expect(lines).toEqual(['a', 'b', '…and 1 more (3 in total)']);
  });

  it('stops at the first item over the budget: the shown items stay a prefix (a later short one never skips ahead)', () => {
    const items = ['first', 'x'.repeat(50), 'short'];
    const lines = fitLines(items, (s) => s, { budget: 30, maxItems: 10, more });
    expect(lines).toEqual(['first', '…and 2 more (3 in total)']);
  });

  it('counts what the caller already used (`used`) against the budget', () => {
    const lines = fitLines(['aaaa', 'bbbb'], (s) => s, { budget: 12, used: 6, maxItems: 10, more });
    // 6 used + "aaaa\n" = 11 fits; "bbbb\n" would reach 16 > 12
    expect(lines).toEqual(['aaaa', '…and 1 more (2 in total)']);
  });
});

describe('splitSpace (the renderers wrap only the part between leading and trailing white space)', () => {
  // What the renderers computed before, with a regular expression: the same answer on short texts.
  const byRegex = (text: string) => {
    const m = /^(\s*)([\s\S]*?)(\s*)$/.exec(text);
    return { lead: m?.[1] ?? '', core: m?.[2] ?? text, tail: m?.[3] ?? '' };
  };

  it('splits as the regular expression did, Unicode white space included', () => {
    const cases = [
      '',
      ' ',
      '   \t\n ',
      'a',
      ' a',
      'a ',
      '  a b  ',
      '\n\tdep_x  ',
      '\u00a0\u3000name\u2028\ufeff',
      'x \n y',
      ' 🚀 launch 🚀 ',
      '\u200b zero-width space is not white space \u200b',
    ];
    for (const text of cases) expect(splitSpace(text), JSON.stringify(text)).toEqual(byRegex(text));
  });

  it('renders a long span with runs of spaces inside (200 000 characters) in one pass, both surfaces', () => {
    // The regular expression rescanned each run of spaces from every position in it: minutes here.
    const text = `a${' '.repeat(199_998)}b`;
    expect(mrkdwn([{ text, style: 'bold' }])).toBe(`*${text}*`);
    expect(discordMarkdown([{ text: ` ${text} `, style: 'bold' }])).toBe(` **${text}** `);
  });

  it('handles a 1 MB span of words and long white-space runs, keeping the outer white space outside', () => {
    const inner = `${'deploy\t'.repeat(20_000)}${' '.repeat(500_000)}${'x'.repeat(100_000)}${' '.repeat(300_000)}end`;
    const text = `\n  ${inner}  `;
    expect(text.length).toBeGreaterThan(1_000_000);
    expect(splitSpace(text)).toEqual({ lead: '\n  ', core: inner, tail: '  ' });
    expect(mrkdwn([{ text, style: 'italic' }])).toBe(`\n  _${inner}_  `);
    expect(discordMarkdown([{ text, style: 'code' }])).toBe(`\n  \`${inner}\`  `);
  });
});
