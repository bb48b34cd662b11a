/** The plain zod issue description used for Switchyard's own and platforms' data. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeIssues, issueLines } from '../src/zod-issues.js';

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
