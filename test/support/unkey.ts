/**
 * The fake Unkey as the switch tests use it: the app `acme/api` (custom domain api.acme.com) and one
 * root key with the permissions a switch needs.
 */
import type { ManualClock } from '../../src/clock.js';
import { type UnkeyFakeOptions, UnkeyFakeServer } from '../fakes/unkey-server.js';

/** What Switchyard's root key needs to read deployments, roll back and promote. */
export const SWITCH_PERMISSIONS = [
  'environment.*.read_deployment',
  'environment.*.rollback_deployment',
  'environment.*.promote_deployment',
] as const;

/**
 * Starts the fake Unkey serving `acme/api` (environments production and preview) on api.acme.com, with
 * root key `key` holding `permissions`.
 */
export function startAcmeUnkey(
  key: string,
  opts: Omit<UnkeyFakeOptions, 'rootKeys' | 'customDomains'> & {
    readonly permissions?: readonly string[];
    /** More root keys, with their permissions (a read-only key, one with none). */
    readonly otherKeys?: Readonly<Record<string, readonly string[]>>;
  },
): Promise<UnkeyFakeServer> {
  const { permissions = SWITCH_PERMISSIONS, otherKeys = {}, ...rest } = opts;
  return UnkeyFakeServer.start({
    ...rest,
    rootKeys: { ...otherKeys, [key]: permissions },
    customDomains: { 'acme/api': ['api.acme.com'] },
    environments: ['acme/api/production', 'acme/api/preview'],
  });
}

/**
 * Pushes `count` (at most 9) ready production deployments of acme/api on `main`, one a minute (the
 * clock advanced after each), with commits aaaaaaa1…, bbbbbbb2…: their ids, oldest first (the last is
 * current).
 */
export async function pushMainDeployments(
  server: UnkeyFakeServer,
  clock: ManualClock,
  count: number,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const sha = `${'abcdefghi'.charAt(i).repeat(7)}${String(i + 1).repeat(33)}`;
    ids.push(server.push({ project: 'acme', app: 'api', environment: 'production', branch: 'main', sha }));
    await clock.advance(60_000);
  }
  return ids;
}
