/**
 * handlers/discord/autocomplete.ts driven through handleAutocomplete with a stub Flow and a minimal
 * AutocompleteInteraction: which deployments `/promote` offers (decided on status, not on the rendered
 * name), names shortened without splitting a surrogate pair, and one time budget for the whole answer
 * (measured on a ManualClock, no real waiting).
 */
import type { AutocompleteInteraction } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { handleAutocomplete, MAX_AUTOCOMPLETE_BUDGET_MS } from '../../handlers/discord/autocomplete.js';
import type { DiscordDeps } from '../../handlers/discord/context.js';
import { type Clock, ManualClock, systemClock } from '../../src/clock.js';
import { resolveEnvironment } from '../../src/domain/plan.js';
import { RefusalCode } from '../../src/domain/result.js';
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

/** True when `s` holds a lone (unpaired) surrogate. */
function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

describe('discord autocomplete', () => {
  it('/promote target offers a ready deployment whose long id and branch push its status out of the name', async () => {
    const long = dep('dpl_8cLvRHd9jUxL3j5w8xGCZr4NDqTc', {
      branch: 'dependabot/npm_and_yarn/packages/web/next-and-eslint-config-next-14.2.35',
    });
    const choices = await answer(stubDeps([dep('dpl_2'), long]), 'promote', {
      name: 'target',
      value: 'dpl_',
    });
    expect(choices.map((c) => c.value)).toEqual(['dpl_2', long.id]);
    const name = choices.find((c) => c.value === long.id)?.name ?? '';
    expect(name.length).toBeLessThanOrEqual(100);
    // The branch is shortened first, so the status stays readable.
    expect(name).toContain('· ready');
  });

  it('/promote target offers only ready or standby deployments, whatever their commit subject says', async () => {
    const choices = await answer(
      stubDeps([
        dep('dpl_ready'),
        dep('dpl_standby', { status: 'standby' }),
        dep('dpl_failed', { status: 'failed', message: 'Mark build · ready for release' }),
        dep('dpl_building', { status: 'building', message: 'wip · standby' }),
        dep('dpl_stopped', { status: 'stopped' }),
      ]),
      'promote',
      { name: 'target', value: 'dpl_' },
    );
    expect(choices.map((c) => c.value)).toEqual(['dpl_ready', 'dpl_standby']);
  });

  it('a deployment without a commit message (Unkey) ends at its status: no "(no commit message)", no dangling " — "', async () => {
    const choices = await answer(
      stubDeps([dep('dpl_unkey', { message: '' })]),
      'rollback',
      { name: 'deployment', value: '' },
      { environment: 'production' },
    );
    expect(choices.map((c) => c.name)).toEqual(['dpl_unkey · a1b2c3d main · ready · current']);
  });

  it('/rollback deployment still lists every recent deployment, with its status', async () => {
    const choices = await answer(
      stubDeps([dep('dpl_ready'), dep('dpl_failed', { status: 'failed' })]),
      'rollback',
      { name: 'deployment', value: '' },
      { environment: 'production' },
    );
    expect(choices.map((c) => c.value)).toEqual(['dpl_ready', 'dpl_failed']);
    expect(choices[1]?.name).toContain('· failed');
  });

  it('never cuts a surrogate pair in half when shortening a name (emoji at the cut)', async () => {
    // 'dpl_x · a1b2c3d main · ready · current — ' is 41 characters; the rocket straddles the cut at 99.
    const subject = `${'x'.repeat(57)}🚀 launch`;
    const choices = await answer(
      stubDeps([dep('dpl_x', { message: subject })]),
      'rollback',
      { name: 'deployment', value: '' },
      { environment: 'production' },
    );
    const name = choices[0]?.name ?? '';
    expect(name.length).toBeLessThanOrEqual(100);
    expect(name.endsWith('…')).toBe(true);
    expect(hasLoneSurrogate(name)).toBe(false);
  });

  it('leaves out a deployment whose id is longer than a choice value may be', async () => {
    const tooLong = dep(`dpl_${'z'.repeat(120)}`);
    const choices = await answer(
      stubDeps([dep('dpl_ok'), tooLong]),
      'rollback',
      { name: 'deployment', value: '' },
      { environment: 'production' },
    );
    expect(choices.map((c) => c.value)).toEqual(['dpl_ok']);
  });

  it('/promote answers within ONE budget even when environments and deployments are both slow', async () => {
    const clock = new ManualClock();
    const start = clock.now();
    const flow: StubFlow = {
      // The environment list takes 1.5 s; the deployment reads never come back.
      environments: () => clock.sleep(1_500).then(() => ['production', 'staging']),
      deploymentChoices: () => new Promise<never>(() => undefined),
    };
    const { interaction: i, answered } = interaction('promote', { name: 'target', value: '' });
    let answeredAt: number | undefined;
    void answered.then(() => {
      answeredAt = clock.now();
    });
    void handleAutocomplete(depsWith(flow, clock, 2_000), i);
    // Move the clock in 100 ms steps until the answer is sent (at most 10 s of clock time).
    for (let step = 0; step < 100 && answeredAt === undefined; step++) {
      await clock.advance(100);
      await new Promise<void>((r) => setImmediate(r));
    }
    expect(answeredAt).toBeDefined();
    expect((answeredAt ?? Number.POSITIVE_INFINITY) - start).toBeLessThanOrEqual(2_000);
    // What was known by then: the environments.
    expect((await answered).map((c) => c.value)).toEqual(['production', 'staging']);
  });

  it('reads a pasted deployment id as the command does: zero-width characters, backticks and quotes dropped', async () => {
    const deployments = [dep('dpl_abc'), dep('dpl_xyz')];
    for (const typed of ['dpl_abc\u200b', '\ufeffdpl_abc', '`dpl_abc`', '“dpl_abc”', ' dpl_abc\u00ad ']) {
      const rollback = await answer(
        stubDeps(deployments),
        'rollback',
        { name: 'deployment', value: typed },
        { environment: 'production' },
      );
      expect(
        rollback.map((c) => c.value),
        JSON.stringify(typed),
      ).toEqual(['dpl_abc']);
      const promote = await answer(stubDeps(deployments), 'promote', { name: 'target', value: typed });
      expect(
        promote.map((c) => c.value),
        JSON.stringify(typed),
      ).toEqual(['dpl_abc']);
    }
  });

  it('reads the chosen environment as the command does: one pasted with a zero-width space still offers its deployments', async () => {
    const asked: string[] = [];
    const flow: StubFlow = {
      environments: async () => ['production', 'preview'],
      // As Flow resolves it: the environment's slug (or a unique prefix), nothing else.
      deploymentChoices: async (environment) => {
        asked.push(environment);
        const resolved = resolveEnvironment(['production', 'preview'], environment);
        return resolved.ok
          ? choicesOf([dep('dpl_abc')])
          : { ok: false, refusal: { code: RefusalCode.unknownEnvironment, message: 'unknown' } };
      },
    };
    for (const environment of ['production\u200b', '`production`', '\u200bproduction']) {
      const choices = await answer(
        depsWith(flow),
        'rollback',
        { name: 'deployment', value: '' },
        { environment },
      );
      expect(
        choices.map((c) => c.value),
        JSON.stringify(environment),
      ).toEqual(['dpl_abc']);
    }
    expect(asked).toEqual(['production', 'production', 'production']);
    // The environment option's own choices too.
    const envs = await answer(depsWith(flow), 'rollback', { name: 'environment', value: 'prod\u200b' });
    expect(envs.map((c) => c.value)).toEqual(['production']);
  });

  it('text of several words, which the command answers with usage, matches nothing and reads nothing', async () => {
    let reads = 0;
    const flow: StubFlow = {
      environments: async () => ['production'],
      deploymentChoices: async () => {
        reads += 1;
        return choicesOf([dep('dpl_abc'), dep('dpl_abd')]);
      },
    };
    expect(
      await answer(
        depsWith(flow),
        'rollback',
        { name: 'deployment', value: 'dpl_abc dpl_abd' },
        { environment: 'production' },
      ),
    ).toEqual([]);
    expect(
      await answer(
        depsWith(flow),
        'rollback',
        { name: 'deployment', value: '' },
        { environment: 'production preview' },
      ),
    ).toEqual([]);
    expect(await answer(depsWith(flow), 'promote', { name: 'target', value: 'production dpl_abc' })).toEqual(
      [],
    );
    expect(
      await answer(depsWith(flow), 'deployments', { name: 'environment', value: 'production x' }),
    ).toEqual([]);
    expect(reads).toBe(0);
  });

  it('caps a configured budget that would miss Discord’s 3 seconds', async () => {
    const clock = new ManualClock();
    const start = clock.now();
    const flow: StubFlow = {
      environments: () => new Promise<never>(() => undefined),
      deploymentChoices: () => new Promise<never>(() => undefined),
    };
    const { interaction: i, answered } = interaction('rollback', { name: 'environment', value: '' });
    let answeredAt: number | undefined;
    void answered.then(() => {
      answeredAt = clock.now();
    });
    void handleAutocomplete(depsWith(flow, clock, 10_000), i);
    for (let step = 0; step < 100 && answeredAt === undefined; step++) {
      await clock.advance(100);
      await new Promise<void>((r) => setImmediate(r));
    }
    expect((answeredAt ?? Number.POSITIVE_INFINITY) - start).toBeLessThanOrEqual(MAX_AUTOCOMPLETE_BUDGET_MS);
    expect(await answered).toEqual([]);
  });
});

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
