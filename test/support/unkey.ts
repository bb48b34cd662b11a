/**
 * The fake Unkey as the switch tests use it: the app `acme/api` (custom domain api.acme.com) and one
 * root key with the permissions a switch needs.
 */
import { type UnkeyFakeOptions, UnkeyFakeServer } from '../fakes/unkey-server.js';

/** What Switchyard's root key needs to read deployments, roll back and promote. */
export const SWITCH_PERMISSIONS = [
  'environment.*.read_deployment',
  'environment.*.rollback_deployment',
  'environment.*.promote_deployment',
] as const;

/** Starts the fake Unkey serving `acme/api` on api.acme.com, with root key `key` holding `permissions`. */
export function startAcmeUnkey(
  key: string,
  opts: Omit<UnkeyFakeOptions, 'rootKeys' | 'customDomains'> & {
    readonly permissions?: readonly string[];
  },
): Promise<UnkeyFakeServer> {
  const { permissions = SWITCH_PERMISSIONS, ...rest } = opts;
  return UnkeyFakeServer.start({
    ...rest,
    rootKeys: { [key]: permissions },
    customDomains: { 'acme/api': ['api.acme.com'] },
  });
}
