import { describe, expect, it } from 'vitest';
import { parseAction } from '../../src/views/actions.js';
import { consoleMessageSchema, renderConsole } from '../../src/views/console.js';
import { confirmationView, deploymentsView, usageView } from '../../src/views/model.js';
import { catalog, routingOf } from './catalog.js';
import { HOSTILE, NOW, plan, snapshot } from './fixtures.js';

describe('renderConsole', () => {
  it.each(catalog())('%s is a valid console message', (_name, view) => {
    const msg = renderConsole(view);
    expect(consoleMessageSchema.parse(JSON.parse(JSON.stringify(msg)))).toEqual(msg);
    expect(msg.title).toBe(view.title);
    expect(msg.tone).toBe(view.tone);
    for (const btn of msg.buttons) expect(parseAction(btn.actionId).ok).toBe(true);
  });

  it('keeps every one of 400 domains, with the total', () => {
    const msg = renderConsole(
      confirmationView(plan('rollback', { liveDomains: 398 }), { state: 'pending', now: NOW }),
    );
    const list = msg.blocks.find((b) => b.type === 'list');
    expect(list?.type === 'list' && [list.total, list.items.length, list.label]).toEqual([
      400,
      400,
      'Affected domains (400)',
    ]);
  });

  it('does not pre-escape: the page gets the raw commit message', () => {
    const msg = renderConsole(confirmationView(plan('rollback'), { state: 'pending', now: NOW }));
    const json = JSON.stringify(msg);
    expect(json).not.toContain('&lt;');
    expect(json).not.toContain('&amp;');
    const card = msg.blocks.find((b) => b.type === 'deployment' && b.label === 'Current deployment');
    const message = card?.type === 'deployment' ? card.fields.find((f) => f.label === 'Message') : undefined;
    expect(message?.value).toEqual([{ text: HOSTILE }]);
  });

  it('carries buttons with action ids, styles and confirm dialogs', () => {
    const p = plan('rollback');
    const msg = renderConsole(confirmationView(p, { state: 'pending', now: NOW }));
    expect(msg.buttons.map((b) => [b.label, b.actionId, b.style, b.confirm?.confirm])).toEqual([
      ['Rollback to target version', `sy1:confirm:${p.id}`, 'danger', 'Roll back'],
      ['Cancel', `sy1:cancel:${p.id}`, 'default', undefined],
    ]);
  });

  it('rows carry their own buttons and markers', () => {
    const s = snapshot({ rolledBack: true });
    const msg = renderConsole(deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW }));
    const rows = msg.blocks.find((b) => b.type === 'rows');
    const current = rows?.type === 'rows' ? rows.rows.find((r) => r.id === 'dep_2') : undefined;
    expect(current?.markers).toEqual(['live', 'rolled back']);
    expect(current?.servesDomains).toBe(4);
    expect(current?.buttons.map((b) => b.label)).toEqual(['Resume automatic deploys']);
  });

  it('usage is one line', () => {
    const msg = renderConsole(usageView('promote', ['production']));
    expect(msg.ephemeral).toBe(true);
    expect(msg.blocks[0]).toEqual({ type: 'usage', text: '/promote <deployment-id | environment>' });
  });
});
