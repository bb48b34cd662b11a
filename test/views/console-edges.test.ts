import { describe, expect, it } from 'vitest';
import { renderConsole } from '../../src/views/console.js';
import { confirmationView, progressView } from '../../src/views/model.js';
import { alice, NOW, plan, progress } from '../views/fixtures.js';
import { deploymentsWithLongId, LONG_ID } from './long-id.js';

describe('renderConsole', () => {
  it("a card carries its Live field and its notes (the target's standby)", () => {
    const msg = renderConsole(
      confirmationView(plan('rollback'), { state: 'pending', now: NOW, requestedBy: alice }),
    );
    const cards = msg.blocks.filter((b) => b.type === 'deployment');
    const [current, target] = cards;
    expect(current?.type === 'deployment' && current.fields.find((f) => f.label === 'Live')?.value).toEqual([
      { text: 'live for 37 minutes' },
    ]);
    expect(target?.type === 'deployment' && target.notes).toEqual(['in standby: reactivation takes longer']);
  });

  it('a row whose id does not fit a button carries the note', () => {
    const msg = renderConsole(deploymentsWithLongId());
    const rows = msg.blocks.find((b) => b.type === 'rows');
    const row = rows?.type === 'rows' ? rows.rows.find((r) => r.id === LONG_ID) : undefined;
    expect(row?.note).toContain('type /promote with it instead');
  });

  it('steps keep their detail and traffic items their ok/bad state', () => {
    const p = plan('rollback');
    const pr = progress(p, {
      outcome: 'failed',
      steps: [
        {
          step: 'verifying',
          state: 'failed',
          startedAt: NOW,
          endedAt: NOW + 500,
          detail: '1 of 2 domains wrong',
        },
      ],
      traffic: [
        { hostname: 'demo.example.com', deploymentId: 'dep_2', ok: true },
        { hostname: 'shop-1.example.com', deploymentId: 'dep_3', ok: false },
      ],
    });
    const msg = renderConsole(progressView(pr, p));
    const steps = msg.blocks.find((b) => b.type === 'steps');
    expect(steps?.type === 'steps' && steps.steps.find((s) => s.step === 'verifying')?.detail).toBe(
      '1 of 2 domains wrong',
    );
    const list = msg.blocks.find((b) => b.type === 'list' && b.label.startsWith('Where traffic was'));
    expect(list?.type === 'list' && list.items.map((it) => it.state)).toEqual(['bad', 'ok']);
  });
});
