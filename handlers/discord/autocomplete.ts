/**
 * Autocomplete for the three commands: configured environments for `environment`, recent deployments
 * of the chosen environment for `deployment`, and both for `/promote target` (only deployments that
 * can take traffic: ready or standby, decided on the deployment's status, never on its rendered
 * name). Deployments come from `Flow.deploymentChoices`: one platform snapshot per environment,
 * shared by a burst of keystrokes and reused for a few seconds. Discord drops an answer later than
 * 3 s, so the whole answer — every platform read it needs, one after the other or side by side — runs
 * against ONE budget (`autocompleteBudgetMs`, capped at `MAX_AUTOCOMPLETE_BUDGET_MS`); past it, what
 * is known by then (for `/promote`, the environments) is offered. Choices follow Discord's limits: at
 * most 25, name and value 1–100 characters; names are shortened without splitting a surrogate pair,
 * and a value that does not fit is left out (a shortened value would name nothing). The typed text
 * and the chosen environment are read as the command reads them (`optionWords`: zero-width
 * characters, quotes and backticks dropped), so an id pasted with them is still offered; text of
 * several words, which the command would answer with usage, matches nothing.
 */
import type { AutocompleteInteraction } from 'discord.js';
import { commandArgs } from '../../src/chat.js';
import { within } from '../../src/clock.js';
import { isSwitchable, shortSha } from '../../src/domain/plan.js';
import type { Deployment } from '../../src/domain/types.js';
import { commitSubject, truncate } from '../../src/views/format.js';
import { optionWords } from './commands/run.js';
import type { DiscordDeps } from './context.js';

/** Discord's limits on autocomplete choices. */
const MAX_CHOICES = 25;
const MAX_TEXT = 100;
/** Longest branch name shown in a choice, so the status after it stays visible. */
const MAX_BRANCH = 40;
/** Environments whose deployments `/promote target` reads (one platform read each, side by side). */
const PROMOTE_ENVIRONMENTS = 5;
/**
 * The most an autocomplete may spend before answering, whatever `autocompleteBudgetMs` says: Discord
 * allows 3 s from the interaction, and the answer still has to travel.
 */
export const MAX_AUTOCOMPLETE_BUDGET_MS = 2_500;

interface Choice {
  readonly name: string;
  readonly value: string;
}

/** A choice, or undefined when its value cannot be sent whole. Names are shortened to fit. */
function choice(name: string, value: string): Choice | undefined {
  if (value.length === 0 || value.length > MAX_TEXT) return undefined;
  return { name: truncate(name === '' ? value : name, MAX_TEXT), value };
}

function present<T>(x: T | undefined): x is T {
  return x !== undefined;
}

/**
 * What the typed text asks for, cleaned as the command cleans it (`optionWords`): its one word, `''`
 * when blank (everything matches), undefined when it holds several words (nothing matches: the
 * command would answer them with usage).
 */
type Query = string | undefined;

function queryOf(typed: string): Query {
  const words = commandArgs(typed);
  return words.length > 1 ? undefined : (words[0] ?? '');
}

function matches(query: Query, ...fields: readonly string[]): boolean {
  if (query === undefined) return false;
  const q = query.toLowerCase();
  return q === '' || fields.some((f) => f.toLowerCase().includes(q));
}

/**
 * One deployment as a choice: `dep_abc · 1a2b3c4 main · ready · current — Fix login`. A long branch
 * is shortened first, so id, sha and status fit; the commit subject takes what is left. Undefined
 * when the id is longer than Discord allows for a value.
 */
export function deploymentChoice(d: Deployment, currentId: string | undefined): Choice | undefined {
  const head = `${d.id} · ${shortSha(d.commit.sha)}`;
  const marks = ` · ${[d.status, ...(d.id === currentId ? ['current'] : [])].join(' · ')}`;
  const room = MAX_TEXT - head.length - marks.length - 1;
  const branch = truncate(d.branch, Math.max(8, Math.min(MAX_BRANCH, room)));
  const subject = commitSubject(d.commit.message);
  return choice(`${head} ${branch}${marks}${subject === '' ? '' : ` — ${subject}`}`, d.id);
}

function environmentChoices(envs: readonly string[], query: Query): Choice[] {
  return envs
    .filter((e) => matches(query, e))
    .map((e) => choice(e, e))
    .filter(present);
}

async function deploymentChoices(
  deps: DiscordDeps,
  environment: string | undefined,
  query: Query,
  offer: (d: Deployment) => boolean = () => true,
): Promise<Choice[]> {
  if (environment === undefined || query === undefined) return [];
  // Only the deployments (one shared snapshot read), not the whole `/deployments` view: its routing
  // reads every domain's alias on Vercel, on every keystroke.
  const out = await deps.flow.deploymentChoices(environment);
  if (!out.ok) return [];
  return out.deployments
    .filter((d) => offer(d) && matches(query, d.id, d.commit.sha, d.branch, d.commit.message))
    .map((d) => deploymentChoice(d, out.currentDeploymentId))
    .filter(present);
}

/**
 * `/promote target`: environments matching the query, then the deployments of the first environments
 * that can take traffic. `known` receives the environment choices as soon as they are read, so an
 * answer cut short by the budget still offers them.
 */
async function promoteChoices(deps: DiscordDeps, query: Query, known: Choice[]): Promise<Choice[]> {
  if (query === undefined) return [];
  const envs = await deps.flow.environments();
  const matching = environmentChoices(envs, query);
  known.push(...matching);
  const lists = await Promise.all(
    envs
      .slice(0, PROMOTE_ENVIRONMENTS)
      .map((e) => deploymentChoices(deps, e, query, isSwitchable).catch((): Choice[] => [])),
  );
  return [...matching, ...lists.flat()];
}

/** The choices for the focused option; `known` collects partial results (see `promoteChoices`). */
async function choicesFor(
  deps: DiscordDeps,
  interaction: AutocompleteInteraction,
  known: Choice[],
): Promise<Choice[]> {
  const focused = interaction.options.getFocused(true);
  const query = queryOf(String(focused.value));
  switch (`${interaction.commandName}.${focused.name}`) {
    case 'rollback.environment':
    case 'deployments.environment':
      return environmentChoices(await deps.flow.environments(), query);
    case 'rollback.deployment': {
      // The environment chosen so far, read as the command will read it: none (or several words) offers
      // no deployments.
      const environment = optionWords(interaction, 'environment');
      return deploymentChoices(deps, environment.length === 1 ? environment[0] : undefined, query);
    }
    case 'promote.target':
      return promoteChoices(deps, query, known);
    default:
      return [];
  }
}

/** Answers an autocomplete interaction (never throws; an answer Discord refuses is only logged). */
export async function handleAutocomplete(
  deps: DiscordDeps,
  interaction: AutocompleteInteraction,
): Promise<void> {
  const known: Choice[] = [];
  const budgetMs = Math.min(deps.autocompleteBudgetMs, MAX_AUTOCOMPLETE_BUDGET_MS);
  // One budget for the whole answer: `null` means "out of time or failed", then `known` is offered.
  const work = choicesFor(deps, interaction, known).catch((e: unknown) => {
    deps.logger.warn(
      { interactionId: interaction.id, err: (e as Error).message },
      'discord autocomplete could not read its choices',
    );
    return null;
  });
  const choices = (await within(deps.clock, budgetMs, work, null)) ?? [...known];
  try {
    await interaction.respond(choices.slice(0, MAX_CHOICES));
  } catch (e) {
    deps.logger.warn(
      { interactionId: interaction.id, err: (e as Error).message },
      'discord autocomplete answer failed',
    );
  }
}
