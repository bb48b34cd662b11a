/** People (and the system) acting in the Flow tests, and config as loadConfig would build it. */
import { type Config, fileConfigSchema } from '../../src/config.js';
import type { Actor } from '../../src/progress.js';

export const alice: Actor = { surface: 'slack', userId: 'U0ALICE', displayName: 'Alice' };
export const bob: Actor = { surface: 'slack', userId: 'U0BOB', displayName: 'Bob' };
export const carol: Actor = { surface: 'slack', userId: 'U0CAROL', displayName: 'Carol' };
export const dave: Actor = { surface: 'discord', userId: '111111111111', displayName: 'Dave' };
export const system: Actor = { surface: 'system', userId: 'switchyard', displayName: 'Switchyard' };

/** Config as loadConfig would produce it from a YAML file with these environments. */
export function testConfig(
  environments: Record<string, unknown> = {},
  platform: Config['platform'] = 'local',
): Pick<Config, 'platform' | 'file'> {
  return { platform, file: fileConfigSchema.parse({ platform, environments }) };
}
