/**
 * handlers/discord/autocomplete.ts at Discord's limits for a choice value (1–100 characters): an id of
 * exactly 100 characters is offered (it names the deployment whole); an empty one is left out (Discord
 * refuses the whole answer over one empty value). Matching ignores case; `/promote` still offers the
 * deployments of the environments whose platform answered when another's read fails. Same stubs as test/discord/autocomplete.test.ts.
 */
import type { AutocompleteInteraction } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { handleAutocomplete } from '../../handlers/discord/autocomplete.js';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { type Clock, systemClock } from '../../src/clock.js';
import type { Deployment, DeploymentStatus } from '../../src/domain/types.js';
import type { DeploymentChoicesOutcome } from '../../src/flow.js';
import { silentLogger } from '../../src/log.js';

interface Choice {
  readonly name: string;
  readonly value: string;
}

function dep(
  id: string,
  over: { branch?: string; message?: string; status?: DeploymentStatus; sha?: string } = {},
): Deployment {
  return {
    id,
    projectId: 'proj_1',
    environment: 'production',
    branch: over.branch ?? 'main',
    commit: {
      sha: over.sha ?? 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
      message: over.message ?? 'Fix checkout',
      author: 'dev',
    },
    createdAt: 1,
    status: over.status ?? 'ready',
  };
}

interface StubFlow {
  environments(): Promise<readonly string[]>;
  deploymentChoices(environment: string): Promise<DeploymentChoicesOutcome>;
}

function choicesOf(deployments: readonly Deployment[]): DeploymentChoicesOutcome {
  return { ok: true, environment: 'production', deployments, currentDeploymentId: deployments[0]?.id };
}

function depsWith(flow: StubFlow, clock: Clock = systemClock, budgetMs = 2_000): DiscordDeps {
  return { flow, clock, logger: silentLogger, autocompleteBudgetMs: budgetMs } as unknown as DiscordDeps;
}

function stubDeps(deployments: readonly Deployment[]): DiscordDeps {
  return depsWith({
    environments: async () => ['production'],
    deploymentChoices: async () => choicesOf(deployments),
  });
}

/** A minimal autocomplete interaction; `answered` resolves with the choices it was answered with. */
function interaction(
  commandName: string,
  focused: { name: string; value: string },
  strings: Record<string, string> = {},
): { interaction: AutocompleteInteraction; answered: Promise<Choice[]> } {
  let resolve: (c: Choice[]) => void = () => undefined;
  const answered = new Promise<Choice[]>((r) => {
    resolve = r;
  });
  const i = {
    id: '1',
    commandName,
    options: {
      getFocused: () => focused,
      getString: (n: string) => strings[n] ?? null,
    },
    respond: async (choices: Choice[]) => resolve(choices),
  } as unknown as AutocompleteInteraction;
  return { interaction: i, answered };
}

async function answer(
  d: DiscordDeps,
  commandName: string,
  focused: { name: string; value: string },
  strings: Record<string, string> = {},
): Promise<Choice[]> {
  const { interaction: i, answered } = interaction(commandName, focused, strings);
  await handleAutocomplete(d, i);
  return answered;
}

describe('discord autocomplete at the value limits', () => {
  it('offers a deployment whose id is exactly 100 characters (Discord allows up to 100)', async () => {
    const id = `dpl_${'y'.repeat(96)}`;
    expect(id).toHaveLength(100);
    const choices = await answer(
      stubDeps([dep('dpl_ok'), dep(id)]),
      'rollback',
      { name: 'deployment', value: '' },
      { environment: 'production' },
    );
    expect(choices.map((c) => c.value)).toEqual(['dpl_ok', id]);
    expect(choices[1]?.name.length).toBeLessThanOrEqual(100);
  });

  it('leaves out a deployment with an empty id (a choice value must not be empty)', async () => {
    const choices = await answer(
      stubDeps([dep('dpl_ok'), dep('')]),
      'rollback',
      { name: 'deployment', value: '' },
      { environment: 'production' },
    );
    expect(choices.map((c) => c.value)).toEqual(['dpl_ok']);
  });

  it('matches the typed text whatever its case', async () => {
    const choices = await answer(stubDeps([dep('dpl_Abc')]), 'rollback', {
      name: 'environment',
      value: 'PROD',
    });
    expect(choices.map((c) => c.value)).toEqual(['production']);
    const deps = await answer(
      stubDeps([dep('dpl_Abc'), dep('dpl_other')]),
      'rollback',
      { name: 'deployment', value: 'DPL_A' },
      { environment: 'production' },
    );
    expect(deps.map((c) => c.value)).toEqual(['dpl_Abc']);
  });

  it("/promote target still offers one environment's deployments when another environment's read fails", async () => {
    const d = depsWith({
      environments: async () => ['production', 'staging'],
      deploymentChoices: async (environment: string) => {
        if (environment === 'staging') throw new Error('platform unreachable');
        return choicesOf([dep('dpl_prod')]);
      },
    });
    const choices = await answer(d, 'promote', { name: 'target', value: '' });
    expect(choices.map((c) => c.value)).toEqual(['production', 'staging', 'dpl_prod']);
  });

  it('matches text anywhere in the id, sha, branch or commit subject, not only at the start', async () => {
    const choices = await answer(
      stubDeps([dep('dpl_1', { message: 'Fix login redirect' }), dep('dpl_2', { message: 'Bump deps' })]),
      'rollback',
      { name: 'deployment', value: 'login' },
      { environment: 'production' },
    );
    expect(choices.map((c) => c.value)).toEqual(['dpl_1']);
  });
});
