/** commandArgs: how command text becomes arguments on every surface (Slack, the console). */
import { describe, expect, it } from 'vitest';
import { commandArgs } from '../../src/chat.js';

describe('commandArgs', () => {
  it('splits on any whitespace and drops empty words', () => {
    expect(commandArgs('  production \t dep_3hd7xa\n')).toEqual(['production', 'dep_3hd7xa']);
    expect(commandArgs('   ')).toEqual([]);
  });

  it('drops formatting and quotes, straight or curly, around a word; keeps _ and - inside ids', () => {
    expect(commandArgs('`production` *dep_3hd7xa*')).toEqual(['production', 'dep_3hd7xa']);
    expect(commandArgs('“production” ‘dep_3hd7xa’')).toEqual(['production', 'dep_3hd7xa']);
    expect(commandArgs('"preview-eu" \'9c1e2d4\'')).toEqual(['preview-eu', '9c1e2d4']);
  });

  it('drops invisible characters pasted along with an id (zero-width space, BOM, controls)', () => {
    expect(commandArgs('production dep_4kq9wz\u200B')).toEqual(['production', 'dep_4kq9wz']);
    expect(commandArgs('\uFEFFproduction\u0000')).toEqual(['production']);
  });

  it('vertical tab and form feed still separate arguments', () => {
    expect(commandArgs('production\u000Bdep_3hd7xa')).toEqual(['production', 'dep_3hd7xa']);
    expect(commandArgs('production\u000Cdep_3hd7xa')).toEqual(['production', 'dep_3hd7xa']);
  });
});
