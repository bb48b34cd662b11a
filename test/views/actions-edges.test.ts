import { describe, expect, it } from 'vitest';
import { actionIdPattern, parseAction } from '../../src/views/actions.js';

describe('parseAction', () => {
  it('refuses a deployment action with a part after the deployment id, rather than dropping it', () => {
    const r = parseAction('sy1:promote:production:dep_1:extra');
    expect(r.ok).toBe(false);
  });

  it('refuses an id over 100 characters even when every part is well formed', () => {
    const id = `sy1:promote:production:${'d'.repeat(90)}`;
    expect(id.length).toBeGreaterThan(100);
    const r = parseAction(id);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.refusal.message).toContain('at most 100 characters');
  });

  it('refuses a ref part that does not start with a letter or digit', () => {
    expect(parseAction('sy1:rollback_to:production:-dep_1').ok).toBe(false);
    expect(parseAction('sy1:rollback_to:.production:dep_1').ok).toBe(false);
  });

  it('refuses a plan id with fewer than 8 hex digits', () => {
    expect(parseAction('sy1:confirm:plan_abc').ok).toBe(false);
    expect(parseAction('sy1:confirm:plan_0123abcd').ok).toBe(true);
  });
});

describe('actionIdPattern', () => {
  it('matches only ids that start with the prefix and the whole kind followed by ":"', () => {
    const p = actionIdPattern('confirm');
    expect(p.test('sy1:confirm:plan_0123abcd')).toBe(true);
    expect(p.test('xsy1:confirm:plan_0123abcd')).toBe(false);
    expect(p.test('sy1:confirmed:plan_0123abcd')).toBe(false);
  });
});
