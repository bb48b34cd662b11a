/**
 * The plain zod issue description used for Switchyard's own and platforms' data, and `expectation`,
 * which words what an issue expected for the messages people read (config errors).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeIssues, expectation, issueLines } from '../src/zod-issues.js';

describe('describeIssues', () => {
  const schema = z.object({ a: z.object({ b: z.string() }), c: z.number() });

  it('names each bad field by its path with zod’s message, joined with "; "', () => {
    const parsed = schema.safeParse({ a: { b: 1 } });
    expect(parsed.success).toBe(false);
    if (parsed.success) return;
    const lines = issueLines(parsed.error);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^a\.b: .*string/);
    expect(lines[1]).toMatch(/^c: .*number/);
    expect(describeIssues(parsed.error)).toBe(lines.join('; '));
  });

  it('names an issue about the whole value by the given root', () => {
    const parsed = schema.safeParse('nope');
    if (parsed.success) throw new Error('expected a failure');
    expect(describeIssues(parsed.error, '(payload)')).toMatch(/^\(payload\): .*object/);
    expect(describeIssues(parsed.error)).toMatch(/^\(root\): /);
  });
});

describe('expectation', () => {
  /** What each issue of parsing `value` with `schema` expected. */
  function expected(schema: z.ZodType, value: unknown): string[] {
    const parsed = schema.safeParse(value);
    if (parsed.success) throw new Error(`expected ${JSON.stringify(value)} to be refused`);
    return parsed.error.issues.map(expectation);
  }

  it("keeps a schema's own message as written", () => {
    expect(expected(z.string().regex(/^a/, 'expected a word starting with a'), 'b')).toEqual([
      'expected a word starting with a',
    ]);
    expect(expected(z.enum(['x', 'y'], { error: 'expected x or y (the two modes)' }), 'z')).toEqual([
      'expected x or y (the two modes)',
    ]);
  });

  it("words zod's defaults from the issue: no 'Invalid option', 'Too small', '>=' or 'received …'", () => {
    const cases: [z.ZodType, unknown, string][] = [
      [z.enum(['trace', 'debug', 'info']), 'verbose', 'expected one of trace, debug, info'],
      [z.literal('on'), 'off', 'expected on'],
      [z.number().int(), 1.5, 'expected a whole number'],
      [z.number(), 'x', 'expected a number'],
      [z.string(), 42, 'expected a string'],
      [z.boolean(), 'yes', 'expected true or false'],
      [z.array(z.string()), 'x', 'expected a list'],
      [z.object({}), [], 'expected a mapping'],
      [z.record(z.string(), z.number()), 3, 'expected a mapping'],
      [z.number().nonnegative(), -1, 'expected a number at least 0'],
      [z.number().positive(), 0, 'expected a number greater than 0'],
      [z.number().max(24), 25, 'expected a number at most 24'],
      [z.number().lt(24), 24, 'expected a number less than 24'],
      [z.string().min(1), '', 'expected a non-empty string'],
      [z.string().min(3), 'ab', 'expected a string of at least 3 characters'],
      [z.string().max(1), 'ab', 'expected a string of at most 1 character'],
      [z.array(z.number()).min(2), [1], 'expected a list of at least 2 items'],
      [z.tuple([z.number(), z.number()]), [1], 'expected a list of at least 2 items'],
      [z.string().regex(/^\d+$/), 'x', 'expected a string matching /^\\d+$/'],
      [z.string().startsWith('xoxb-'), 'xoxp-1', 'expected a string starting with "xoxb-"'],
      [z.number().multipleOf(5), 3, 'expected a multiple of 5'],
      [z.union([z.number(), z.string()]), true, 'expected a number or a string'],
      [z.number().refine((n) => n > 1), 0, 'expected a valid value'],
    ];
    for (const [schema, value, words] of cases) {
      const got = expected(schema, value);
      expect(got, JSON.stringify(value)).toEqual([words]);
      expect(got[0]).not.toMatch(/Invalid|Too (small|big)|received|>=|<=/);
    }
  });

  it('names unknown keys of a strict object', () => {
    expect(expected(z.object({ a: z.number() }).strict(), { a: 1, b: 2 })).toEqual([
      'expected only known keys ("b" is not one: misspelt?)',
    ]);
    expect(expected(z.object({}).strict(), { b: 1, c: 2 })).toEqual([
      'expected only known keys ("b", "c" are not: misspelt?)',
    ]);
  });
});
