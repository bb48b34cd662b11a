import { describe, expect, it } from 'vitest';
import { planId } from '../../src/domain/plan.js';
import { SwitchyardError } from '../../src/errors.js';
import {
  type Action,
  actionIdPattern,
  encodeAction,
  MAX_ACTION_ID_LENGTH,
  parseAction,
  tryEncodeAction,
} from '../../src/views/actions.js';

const pid = planId({
  action: 'rollback',
  projectId: 'proj_1',
  environment: 'production',
  expectedCurrent: 'dep_3',
  target: 'dep_2',
  rolledBack: false,
  targetStandby: false,
  domains: ['shop.example.com'],
});

const all: Action[] = [
  { kind: 'confirm', ref: pid },
  { kind: 'cancel', ref: pid },
  { kind: 'approve', ref: pid },
  { kind: 'dismiss', ref: pid },
  { kind: 'replan', ref: pid },
  { kind: 'rollback_to', ref: { environment: 'production', deploymentId: 'dep_2' } },
  { kind: 'promote', ref: { environment: 'preview-eu.1', deploymentId: 'dpl_8Hq2KxZ0pL3mN5oP7rS9tU1vW3yA' } },
];

describe('action ids', () => {
  it.each(all)('round-trips $kind', (action) => {
    const id = encodeAction(action);
    expect(id.length).toBeLessThanOrEqual(MAX_ACTION_ID_LENGTH);
    expect(id.startsWith(`sy1:${action.kind}:`)).toBe(true);
    expect(actionIdPattern(action.kind).test(id)).toBe(true);
    expect(parseAction(id)).toEqual({ ok: true, value: action });
  });

  it('uses the real plan id format', () => {
    expect(encodeAction({ kind: 'confirm', ref: pid })).toBe(`sy1:confirm:${pid}`);
  });

  it('routing patterns do not confuse kinds', () => {
    const id = encodeAction({ kind: 'promote', ref: { environment: 'production', deploymentId: 'dep_2' } });
    expect(actionIdPattern('confirm').test(id)).toBe(false);
    expect(actionIdPattern('rollback_to').test(id)).toBe(false);
  });

  it('fits the longest ids allowed within 100 characters or refuses to encode', () => {
    const long = {
      kind: 'rollback_to',
      ref: { environment: 'e'.repeat(40), deploymentId: 'd'.repeat(43) },
    } as const;
    expect(encodeAction(long).length).toBe(100);
    const tooLong = {
      kind: 'rollback_to',
      ref: { environment: 'e'.repeat(40), deploymentId: 'd'.repeat(44) },
    } as const;
    const r = tryEncodeAction(tooLong);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.refusal.message).toContain('101 characters, over the limit of 100');
    expect(() => encodeAction(tooLong)).toThrow(SwitchyardError);
  });

  it('refuses refs that would break the scheme', () => {
    const bad = tryEncodeAction({
      kind: 'rollback_to',
      ref: { environment: 'prod:uction', deploymentId: 'dep_2' },
    });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.refusal.message).toMatch(
        /ref\.environment: expected only letters, digits.* in the environment/,
      );
    const notPlan = tryEncodeAction({ kind: 'confirm', ref: 'dep_2' });
    expect(notPlan.ok).toBe(false);
    if (!notPlan.ok) expect(notPlan.refusal.message).toContain('expected a plan id');
  });

  const malformed: [string, unknown, RegExp][] = [
    ['not a string', 42, /expected a string/],
    ['empty', '', /expected "sy1:<kind>:<ref>"/],
    [
      'foreign prefix',
      'xx:confirm:plan_0123abcd',
      /expected "sy1:<kind>:<ref>" with kind one of confirm, cancel/,
    ],
    ['unknown kind', 'sy1:explode:plan_0123abcd', /unknown kind "explode"/],
    ['plan kind with two parts', 'sy1:confirm:plan_0123abcd:extra', /confirm expects one plan id/],
    ['plan kind with a non-plan ref', 'sy1:approve:dep_3', /ref: expected a plan id such as plan_0123abcd/],
    ['upper-case hex', 'sy1:confirm:plan_0123ABCD', /expected a plan id/],
    ['deployment kind without env', 'sy1:rollback_to:dep_2', /expects "<environment>:<deployment id>"/],
    [
      'deployment kind with empty id',
      'sy1:promote:production:',
      /ref\.deploymentId: expected a non-empty deployment id/,
    ],
    [
      'injection characters',
      'sy1:promote:production:dep_2<script>',
      /ref\.deploymentId: expected only letters, digits.* in the deployment id/,
    ],
    ['missing ref', 'sy1:cancel', /cancel expects one plan id/],
  ];
  it.each(malformed)('rejects %s with a clear message', (_name, input, message) => {
    const r = parseAction(input);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.code).toBe('invalid_input');
      expect(r.refusal.message).toMatch(/^Invalid action id/);
      expect(r.refusal.message).toMatch(message);
    }
  });

  it('rejects oversized ids without echoing them', () => {
    const huge = `sy1:confirm:plan_${'a'.repeat(5000)}`;
    const r = parseAction(huge);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.refusal.message).toContain(`got ${huge.length} characters`);
      expect(r.refusal.message).toContain('expected at most 100 characters');
      expect(r.refusal.message.length).toBeLessThan(200);
    }
  });

  it('clips long malformed input in the message', () => {
    const r = parseAction(`zz:${'x'.repeat(90)}`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.refusal.message).toContain('…');
  });
});
