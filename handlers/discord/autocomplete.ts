/**
 * Autocomplete for the three commands: configured environments for `environment`, recent deployments
 * of the chosen environment for `deployment`, and both for `/promote target`. Discord drops an answer
 * later than 3 s, so the platform reads run against a budget; past it, what is known (environments)
 * is offered. Choices follow Discord's limits: at most 25, name and value at most 100 characters.
 */
import type { AutocompleteInteraction } from 'discord.js';
import { within } from '../../src/clock.js';
import { shortSha } from '../../src/domain/plan.js';
import type { Deployment } from '../../src/domain/types.js';
import type { DiscordDeps } from './context.js';

/** Discord's limits on autocomplete choices. */
const MAX_CHOICES = 25;
const MAX_TEXT = 100;

interface Choice {
  readonly name: string;
  readonly value: string;
}

function clip(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}

function matches(query: string, ...fields: readonly string[]): boolean {
  const q = query.trim().toLowerCase();
  return q === '' || fields.some((f) => f.toLowerCase().includes(q));
}

/** One deployment as a choice: `dep_abc · 1a2b3c4 main · ready · current — Fix login`. */
export function deploymentChoice(d: Deployment, currentId: string | undefined): Choice {
  const marks = [d.status, ...(d.id === currentId ? ['current'] : [])].join(' · ');
  const subject = d.commit.message.split('\n')[0] ?? '';
  return {
    name: clip(`${d.id} · ${shortSha(d.commit.sha)} ${d.branch} · ${marks} — ${subject}`),
    value: clip(d.id),
  };
}

async function environmentChoices(deps: DiscordDeps, query: string): Promise<Choice[]> {
  const envs = await deps.flow.environments();
  return envs.filter((e) => matches(query, e)).map((e) => ({ name: clip(e), value: clip(e) }));
}

async function deploymentChoices(deps: DiscordDeps, environment: string, query: string): Promise<Choice[]> {
  if (environment.trim() === '') return [];
  const out = await deps.flow.deployments(environment);
  if (!out.ok) return [];
  const current = out.snapshot.environment.currentDeploymentId;
  return out.snapshot.deployments
    .filter((d) => matches(query, d.id, d.commit.sha, d.branch, d.commit.message))
    .map((d) => deploymentChoice(d, current));
}

/** Resolves with `work`, or with `fallback` once `budgetMs` of the deps' clock has passed or it failed. */
function withinBudget<T>(deps: DiscordDeps, work: Promise<T>, fallback: T): Promise<T> {
  return within(
    deps.clock,
    deps.autocompleteBudgetMs,
    work.catch(() => fallback),
    fallback,
  );
}

/** Answers an autocomplete interaction (never throws; an answer Discord refuses is only logged). */
export async function handleAutocomplete(
  deps: DiscordDeps,
  interaction: AutocompleteInteraction,
): Promise<void> {
  const focused = interaction.options.getFocused(true);
  const query = String(focused.value);
  let choices: Choice[];
  switch (`${interaction.commandName}.${focused.name}`) {
    case 'rollback.environment':
    case 'deployments.environment':
      choices = await withinBudget(deps, environmentChoices(deps, query), []);
      break;
    case 'rollback.deployment': {
      const environment = interaction.options.getString('environment') ?? '';
      choices = await withinBudget(deps, deploymentChoices(deps, environment, query), []);
      break;
    }
    case 'promote.target': {
      const envs = await withinBudget(deps, environmentChoices(deps, ''), []);
      const matching = envs.filter((e) => matches(query, e.value));
      const rows = await withinBudget(
        deps,
        Promise.all(envs.slice(0, 5).map((e) => deploymentChoices(deps, e.value, query))).then((lists) =>
          lists.flat().filter((c) => /· (ready|standby)/.test(c.name)),
        ),
        [],
      );
      choices = [...matching, ...rows];
      break;
    }
    default:
      choices = [];
  }
  try {
    await interaction.respond(choices.slice(0, MAX_CHOICES));
  } catch (e) {
    deps.logger.warn(
      { interactionId: interaction.id, err: (e as Error).message },
      'discord autocomplete answer failed',
    );
  }
}
