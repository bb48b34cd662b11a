import { describe, expect, it } from 'vitest';
import { commitSubject, formatTime, longDuration, shortDuration, truncate } from '../../src/views/format.js';

describe('format helpers', () => {
  it.each([
    [0, '0 seconds'],
    [1_000, '1 second'],
    [59_999, '59 seconds'],
    [60_000, '1 minute'],
    [7 * 60_000 + 30_000, '7 minutes'],
    [3_600_000, '1 hour'],
    [2 * 3_600_000 + 5 * 60_000, '2 hours 5 minutes'],
    [24 * 3_600_000, '1 day'],
    [30 * 3_600_000, '1 day 6 hours'],
    [-5_000, '0 seconds'],
  ])('longDuration(%i) = %s', (ms, text) => {
    expect(longDuration(ms)).toBe(text);
  });

  it.each([
    [120, '120 ms'],
    [1_200, '1.2 s'],
    [12_400, '12 s'],
    [60_000, '1 min'],
    [185_000, '3 min 5 s'],
    [3_600_000, '1 h'],
    [3_720_000, '1 h 2 min'],
  ])('shortDuration(%i) = %s', (ms, text) => {
    expect(shortDuration(ms)).toBe(text);
  });

  // The unit is picked after rounding: a value just under a boundary reads as the boundary does, never
  // in a form the function gives no other value ("10.0 s", "60 s").
  it.each([
    [999.6, '1.0 s'],
    [9_949, '9.9 s'],
    [9_960, '10 s'],
    [10_000, '10 s'],
    [59_499, '59 s'],
    [59_500, '1 min'],
    [59_960, '1 min'],
    [119_600, '2 min'],
    [3_599_600, '1 h'],
  ])('shortDuration(%d) rounds before it picks the unit: %s', (ms, text) => {
    expect(shortDuration(ms)).toBe(text);
  });

  it('formats absolute times in UTC', () => {
    expect(formatTime(Date.UTC(2026, 10, 29, 9, 5))).toBe('2026-11-29 09:05 UTC');
  });

  it('truncates with an ellipsis without splitting a surrogate pair', () => {
    expect(truncate('abcdef', 6)).toBe('abcdef');
    expect(truncate('abcdef', 4)).toBe('abc…');
    const s = `ab${'😀'.repeat(3)}`;
    const cut = truncate(s, 4);
    expect(cut.length).toBeLessThanOrEqual(4);
    expect(cut).toBe('ab…');
    expect(truncate('abc', 1)).toBe('…');
    expect(truncate('abc', 0)).toBe('');
  });

  it('takes the first line of a commit message', () => {
    expect(commitSubject('fix: a\r\n\r\nbody')).toBe('fix: a');
    expect(commitSubject('   ')).toBe(''); // none: callers leave it out (an Unkey deployment)
    expect(commitSubject('x'.repeat(200)).length).toBe(150);
  });
});
