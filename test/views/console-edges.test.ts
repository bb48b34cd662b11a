import { describe, expect, it } from 'vitest';
import { renderConsole } from '../../src/views/console.js';
import { confirmationView, deploymentsView, progressView } from '../../src/views/model.js';
import { routingOf } from '../views/catalog.js';
import { alice, NOW, plan, progress, snapshot } from '../views/fixtures.js';
import { deploymentsWithLongId, LONG_ID } from './long-id.js';

describe('renderConsole', () => {
  it('a deployment without commit message or author (Unkey) has no Message or Author field', () => {
    const s = snapshot({ shaOnly: true });
    const labels = (msg: ReturnType<typeof renderConsole>) =>
      msg.blocks.flatMap((b) =>
        b.type === 'deployment'
          ? [b.fields.map((f) => f.label)]
          : b.type === 'rows'
            ? b.rows.map((r) => r.fields.map((f) => f.label))
            : [],
      );
    const rows = labels(renderConsole(deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW })));
    const cards = labels(
      renderConsole(
        confirmationView(plan('rollback', { shaOnly: true }), {
          state: 'pending',
          now: NOW,
          requestedBy: alice,
        }),
      ),
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(cards).toHaveLength(2);
    for (const fields of [...rows, ...cards]) expect(fields).not.toEqual(expect.arrayContaining(['Message']));
    for (const fields of [...rows, ...cards]) expect(fields).not.toEqual(expect.arrayContaining(['Author']));
    expect(cards[0]).toEqual(['Deployment', 'Commit', 'Status', 'Live', 'Age']);
  });

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
