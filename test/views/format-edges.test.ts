import { describe, expect, it } from 'vitest';
import { fitLines } from '../../src/views/format.js';

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
