/**
 * the Vercel answer schemas (src/platform/vercel/schemas.ts): an alias answer given
 * as an array is reduced to the requested domain's entry, whatever its case or trailing dot.
 */
import { describe, expect, it } from 'vitest';
import { AliasResponseSchema, aliasFromResponse } from '../../src/platform/vercel/schemas.js';

describe('aliasFromResponse', () => {
  it('picks the entry for the requested domain from several, ignoring case and a trailing dot', () => {
    const res = AliasResponseSchema.parse([
      { alias: 'www.acme.com', uid: 'al_1', deploymentId: 'dpl_www' },
      { alias: 'Shop.Acme.com.', uid: 'al_2', deploymentId: 'dpl_shop' },
    ]);
    expect(aliasFromResponse(res, 'shop.acme.com')?.deploymentId).toBe('dpl_shop');
    expect(aliasFromResponse(res, 'SHOP.acme.com')?.deploymentId).toBe('dpl_shop');
    // Several entries and none for the domain: no alias (not someone else's).
    expect(aliasFromResponse(res, 'api.acme.com')).toBeUndefined();
  });
});
