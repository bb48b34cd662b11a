/**
 * Who may act on an environment: the per-environment allow lists of the config file
 * (`environments.<env>.allow`), checked the same way for every chat surface (Slack users and
 * user groups, Discord users and roles, console users). A "no" is a value with code `forbidden` and a
 * message saying how to get access (STYLE 2), never a throw.
 *
 * The rule for environments without an allow list: on the embedded local platform everyone may act
 * (the demo works out of the box); on a real platform (unkey, vercel) nobody may, and the refusal shows
 * the YAML to add. Group and role membership is resolved by the surfaces (Discord interactions carry
 * member roles; Slack resolves user groups through its API) and passed in on the actor. A Slack group
 * whose lookup failed comes in `uncheckedGroups`: it grants nothing (fail closed), but when such a group
 * was the only way left to be allowed, the refusal says so rather than "not on the allow list": that the
 * groups could not be checked right now and to try again, or, when Slack refused the lookup for good
 * (`rejectedGroups`: a group id that does not exist, a plan without user groups, a missing scope), which
 * config key names the group, Slack's code, what to fix and where — the config key only for a group id
 * Slack does not know; the app, the token or the workspace's settings otherwise — and that no retry
 * helps until that is done.
 *
 * A switch waits between the click and its turn (no worker running, another switch of the environment,
 * a retry's backoff), and the config may change meanwhile: the worker judges the people a queued job
 * names again by the config in force in its process (`queuedSwitchRefusal`), on what the job records
 * of them: who they are, and which of their listed groups or roles let them in at the click (`Grant`).
 */
import type { Config, EnvironmentConfig } from './config.js';
import type { Refusal } from './domain/result.js';
import { RefusalCode } from './domain/result.js';
import { assertNever } from './domain/types.js';
import type { Actor, Grant } from './progress.js';

/** Memberships a surface resolved for the acting user at the time of the click. */
export interface Membership {
  /** Slack user-group ids (`S…`) the user belongs to. */
  readonly groups?: readonly string[];
  /** Configured Slack user groups whose members could not be looked up at the time (Slack's API failed). */
  readonly uncheckedGroups?: readonly string[];
  /** Those of `uncheckedGroups` whose lookup Slack refused for good: asking again cannot help. */
  readonly rejectedGroups?: readonly RejectedGroup[];
  /** Discord role ids the member holds in the guild. */
  readonly roles?: readonly string[];
}

/** A configured Slack user group whose members Slack refuses to list, whatever the retry. */
export interface RejectedGroup {
  /** The group id (`S…`). */
  readonly group: string;
  /** Slack's error code (`no_such_subteam`, `plan_upgrade_required`, `missing_scope`, …). */
  readonly code: string;
  /** What the code means and what an operator does about it (the surface knows its chat service). */
  readonly problem: string;
}

/** A person (or the system, for alert suggestions) together with the memberships that grant access. */
export type ActingUser = Actor & Membership;

/** The part of the configuration permission checks read. */
export interface PermissionContext {
  readonly config: Pick<Config, 'platform' | 'file'>;
}

/** Outcome of a permission check. */
export type Permission = { readonly ok: true } | { readonly ok: false; readonly refusal: Refusal };

const ALLOWED: Permission = { ok: true };

/**
 * Slack's code for a user-group id it does not know (a typo, a deleted group, one of another
 * workspace): of the lasting refusals (handlers/slack/groups.ts), the only one the allow list's group
 * id is wrong for. The others are fixed in the Slack app, SLACK_BOT_TOKEN or the workspace's settings
 * (each `RejectedGroup.problem` says how); correcting the id cannot help them.
 */
export const UNKNOWN_GROUP_CODE = 'no_such_subteam';

/**
 * What has to change before asking Slack again can help, for groups Slack refused for good: the
 * config key for a group id Slack does not know; for any other code, what its `problem` said (the id
 * is right). One sentence, closing the refusal's list of such groups.
 */
function rejectedGroupsFix(rejected: readonly RejectedGroup[], key: string): string {
  const unknown = rejected.filter((r) => r.code === UNKNOWN_GROUP_CODE).map((r) => r.group);
  const elsewhere = rejected.filter((r) => r.code !== UNKNOWN_GROUP_CODE).map((r) => r.group);
  const configFix = `an operator has to fix ${key} in the config file (SWITCHYARD_CONFIG)`;
  const plural = elsewhere.length > 1;
  const idsRight = `${plural ? 'their ids are' : 'its id is'} right, so correcting ${key} will not help`;
  if (elsewhere.length === 0) return `Retrying will not change that: ${configFix}.`;
  if (unknown.length === 0) {
    return `Retrying will not change that until what is said above is done (${idsRight}).`;
  }
  return (
    `Retrying will not change that: for ${nameList(unknown)}, ${configFix}; ` +
    `for ${nameList(elsewhere)}, what is said above has to be done (${idsRight}).`
  );
}

/** The config key of an environment's allow-listed Slack user groups. */
export function slackGroupsKey(environment: string): string {
  return `environments.${environment}.allow.slack.groups`;
}

/** Same person on the same surface (display names are not identities). */
export function sameActor(a: Actor, b: Actor): boolean {
  return a.surface === b.surface && a.userId === b.userId;
}

/**
 * The index of the config's `people` entry holding `actor`'s account (-1 when none does): that
 * person's accounts on the other surfaces are theirs too.
 */
function personIndex(actor: Actor, config: Pick<Config, 'file'>): number {
  if (actor.surface === 'system') return -1;
  const surface = actor.surface;
  return config.file.people.findIndex((p) => p[surface] === actor.userId);
}

/**
 * Whether `a` and `b` are one person for the two-person rule: the same account (`sameActor`), or two
 * accounts the config's `people` links as one person's (a Slack user and a Discord user, say). Without
 * such an entry accounts on two surfaces are two people.
 */
export function samePerson(a: Actor, b: Actor, config: Pick<Config, 'file'>): boolean {
  if (sameActor(a, b)) return true;
  const person = config.file.people[personIndex(a, config)];
  return person !== undefined && b.surface !== 'system' && person[b.surface] === b.userId;
}

/**
 * Why `a` and `b` count as one person, for a refusal: empty for the same account; for accounts the
 * config links, a clause saying so (`people.<n>` named).
 */
export function linkedClause(a: Actor, b: Actor, config: Pick<Config, 'file'>): string {
  if (sameActor(a, b)) return '';
  const i = personIndex(a, config);
  const person = config.file.people[i];
  const label = person?.name === undefined ? '' : ` (${person.name})`;
  return ` (the config's people.${i}${label} links ${a.surface} ${a.userId} and ${b.surface} ${b.userId} as one person)`;
}

function mention(actor: Actor): string {
  return actor.displayName === actor.userId ? actor.userId : `${actor.displayName} (${actor.userId})`;
}

type Allow = NonNullable<EnvironmentConfig['allow']>;

/** The YAML an operator adds to let `actor` act on `environment`. */
export function allowSnippet(environment: string, actor: Actor): string {
  const id = JSON.stringify(actor.userId);
  const surface = actor.surface === 'system' ? 'slack' : actor.surface;
  const lines = [
    'environments:',
    `  ${environment}:`,
    '    allow:',
    `      ${surface}:`,
    `        users: [${id}]`,
  ];
  switch (surface) {
    case 'slack':
      lines.push('        groups: []   # Slack user-group ids, e.g. S0123ABCD');
      break;
    case 'discord':
      lines.push('        roles: []    # Discord role ids');
      break;
    case 'console':
      break;
    default:
      return assertNever(surface, 'surface');
  }
  return lines.join('\n');
}

function keyFor(environment: string, surface: 'slack' | 'discord' | 'console'): string {
  const base = `environments.${environment}.allow.${surface}`;
  switch (surface) {
    case 'slack':
      return `${base}.users (or ${base}.groups)`;
    case 'discord':
      return `${base}.users (or ${base}.roles)`;
    case 'console':
      return `${base}.users`;
    default:
      return assertNever(surface, 'surface');
  }
}

function forbidden(message: string, context: Record<string, unknown>): Permission {
  return { ok: false, refusal: { code: RefusalCode.forbidden, message, context } };
}

function listed(allow: Allow, actor: ActingUser): boolean {
  switch (actor.surface) {
    case 'slack': {
      if (allow.slack.users.includes(actor.userId)) return true;
      const groups = actor.groups ?? [];
      return allow.slack.groups.some((g) => groups.includes(g));
    }
    case 'discord': {
      if (allow.discord.users.includes(actor.userId)) return true;
      const roles = actor.roles ?? [];
      return allow.discord.roles.some((r) => roles.includes(r));
    }
    case 'console':
      return allow.console.users.includes(actor.userId);
    case 'system':
      return false;
    default:
      return assertNever(actor.surface, 'surface');
  }
}

/**
 * May `actor` roll back or promote `environment` (confirm, approve, or cancel someone else's request)?
 *
 * - The system actor (alert suggestions) never may: it proposes, a person decides.
 * - With an allow list: the user id, one of the Slack groups or one of the Discord roles must be listed
 *   for the actor's surface. A Slack group that could not be looked up grants nothing; when it is on the
 *   list (and nothing else allows the actor) the refusal says so: `reason: 'groups_unavailable'` (try
 *   again) when the lookup of one of them may pass, `reason: 'groups_rejected'` (what has to be fixed
 *   first: the config key named, or what Slack's code means) when Slack refused every one of them for
 *   good.
 * - Without one: allowed on the local platform (demo), refused on a real platform with the YAML to add.
 */
export function canAct(actor: ActingUser, environment: string, ctx: PermissionContext): Permission {
  const { config } = ctx;
  const context = {
    environment,
    surface: actor.surface,
    userId: actor.userId,
    platform: config.platform,
  };
  if (actor.surface === 'system') {
    return forbidden(
      `Switchyard itself cannot confirm a switch of ${environment}: a permitted person has to click.`,
      context,
    );
  }
  const allow = config.file.environments[environment]?.allow;
  if (allow === undefined) {
    if (config.platform === 'local') return ALLOWED;
    return forbidden(
      `${environment} has no allow list, so nobody may roll it back or promote it on the ${config.platform} platform. ` +
        `Add ${keyFor(environment, actor.surface)} to the config file (SWITCHYARD_CONFIG), for example:\n${allowSnippet(environment, actor)}`,
      {
        ...context,
        reason: 'no_allow_list',
        key: `environments.${environment}.allow.${actor.surface}.users`,
      },
    );
  }
  if (listed(allow, actor)) return ALLOWED;
  if (actor.surface === 'slack') {
    const refusal = uncheckedGroupsRefusal(actor, environment, allow, context);
    if (refusal !== undefined) return refusal;
  }
  const who =
    actor.surface === 'slack'
      ? 'neither your slack user id nor any of your user groups is'
      : actor.surface === 'discord'
        ? 'neither your discord user id nor any of your roles is'
        : `your ${actor.surface} user id is not`;
  return forbidden(
    `${mention(actor)} may not roll back or promote ${environment}: ${who} on its allow list. ` +
      `Ask someone who is, or have an operator add you under ${keyFor(environment, actor.surface)} in the config file, for example:\n${allowSnippet(environment, actor)}`,
    { ...context, reason: 'not_listed', key: `environments.${environment}.allow.${actor.surface}.users` },
  );
}

/** The people a queued switch names, as its job records them (src/queue.ts `switchJobSchema`). */
export interface QueuedSwitch {
  readonly action: 'rollback' | 'promote';
  readonly environment: string;
  /** Who confirmed it: the switch is queued, and made, in their name. */
  readonly requestedBy: Actor;
  /** Who approved it (the two-person rule), when someone did. */
  readonly approvedBy?: Actor | undefined;
  /**
   * What let each of them in at their click (their groups or roles then on the allow list; none for a
   * person let in by their user id). Absent in jobs queued by versions before it: see `mayStillAct`.
   */
  readonly grants?:
    | {
        readonly requestedBy?: Grant | undefined;
        readonly approvedBy?: Grant | undefined;
      }
    | undefined;
}

/**
 * `canAct` for a person as a queued job records them: who they are, and the groups or roles that let
 * them in at the click (`grant`; `recorded` false for a job of an earlier version, which keeps none).
 * With a recorded grant, only its groups or roles count as held: a group or role taken off the allow
 * list since no longer lets them through, and neither does one they held but were not let in by
 * (whether they are still a member of the granting one cannot be known here: they are taken to be).
 * Without one, what can be judged is judged: the system actor, an environment without an allow list
 * (open on the local platform, closed on a real one), a user id listed for its surface, and a surface
 * whose list names no group or role (the user id was the only way in); when the list names Slack user
 * groups (for a Slack user) or Discord roles (for a Discord user), one of them may be how the person
 * got in, and every listed one counts as held.
 */
function mayStillAct(
  actor: Actor,
  environment: string,
  ctx: PermissionContext,
  grant: { readonly recorded: boolean; readonly via?: Grant | undefined },
): Permission {
  const allow = ctx.config.file.environments[environment]?.allow;
  const held: Membership = grant.recorded
    ? (grant.via ?? {})
    : allow === undefined
      ? {}
      : actor.surface === 'slack'
        ? { groups: allow.slack.groups }
        : actor.surface === 'discord'
          ? { roles: allow.discord.roles }
          : {};
  const { surface, userId, displayName } = actor;
  return canAct({ surface, userId, displayName, ...held }, environment, ctx);
}

/**
 * Whether a second person must approve switches of `environment` (`environments.<env>.twoPersonRule`,
 * off unless set): the one reading of the rule, by a click (`Flow.twoPersonRule`) and by the worker
 * judging a queued switch again (`queuedSwitchRefusal`), so the two never disagree.
 */
export function twoPersonRuleOn(config: Pick<Config, 'file'>, environment: string): boolean {
  return config.file.environments[environment]?.twoPersonRule ?? false;
}

/**
 * Why a queued switch may not be carried out by the config in force now (`ctx`: the worker's), which
 * may have changed since the click (an operator took someone off the allow list, or turned the
 * two-person rule on, and restarted while the job waited): its confirmer (`requestedBy`, in whose name
 * it is made) must still be permitted (`mayStillAct`), and with the two-person rule on, a second,
 * different person must have approved it and be permitted too. A `forbidden` refusal saying what
 * changed and that nothing was switched (context `reason: 'config_changed'`, `cause` what failed:
 * `not_listed`, `no_allow_list`, `system`, `two_person_rule`); undefined when the switch may go on.
 */
export function queuedSwitchRefusal(job: QueuedSwitch, ctx: PermissionContext): Refusal | undefined {
  const { action, environment: env } = job;
  const changed = (
    message: string,
    cause: string,
    who: { readonly role: 'requestedBy' | 'approvedBy'; readonly actor: Actor } | undefined,
    key: string,
  ): Refusal => ({
    code: RefusalCode.forbidden,
    message,
    context: {
      environment: env,
      action,
      reason: 'config_changed',
      cause,
      key,
      ...(who === undefined
        ? {}
        : { role: who.role, actor: { surface: who.actor.surface, userId: who.actor.userId } }),
    },
  });
  const recorded = job.grants !== undefined;
  const notPermitted = (role: 'requestedBy' | 'approvedBy', actor: Actor) => {
    const via = job.grants?.[role];
    const permission = mayStillAct(actor, env, ctx, { recorded, via });
    if (permission.ok) return undefined;
    const cause = permission.refusal.context?.reason;
    const who = mention(actor);
    if (cause === 'no_allow_list') {
      return changed(
        `${env} has no allow list in the configuration in force (it changed since ${who}'s click, or this worker was started without the config file the bot runs with), so nobody may roll it back or promote it on the ${ctx.config.platform} platform; nothing was switched. An operator adds environments.${env}.allow to the config file (SWITCHYARD_CONFIG), the same file for every bot and worker.`,
        'no_allow_list',
        { role, actor },
        `environments.${env}.allow`,
      );
    }
    if (actor.surface === 'system') {
      return changed(
        `Switchyard itself is named as having ${role === 'requestedBy' ? 'confirmed' : 'approved'} this ${action}, and only a permitted person may; nothing was switched.`,
        'system',
        { role, actor },
        `environments.${env}.allow`,
      );
    }
    const gone = [
      ...(via?.groups ?? []).map((g) => `Slack user group ${g}`),
      ...(via?.roles ?? []).map((r) => `Discord role ${r}`),
    ];
    const through =
      gone.length === 0
        ? ''
        : `: ${nameList(gone)}, which let them in at the click, ${gone.length === 1 ? 'is' : 'are'} no longer on it`;
    const lost = `is no longer permitted on ${env}: not on its allow list in the configuration in force (it changed since the click${through})`;
    return changed(
      role === 'requestedBy'
        ? `${who} ${lost}, and this ${action} is made in their name; nothing was switched. Someone permitted now can ask for it again.`
        : `${who}, who approved this ${action}, ${lost}, and ${env} needs two permitted people; nothing was switched. Ask for it again: a permitted person confirms it, and a second one approves.`,
      'not_listed',
      { role, actor },
      `environments.${env}.allow.${actor.surface}`,
    );
  };
  const requester = notPermitted('requestedBy', job.requestedBy);
  if (requester !== undefined) return requester;
  if (!twoPersonRuleOn(ctx.config, env)) return undefined;
  const approver = job.approvedBy;
  if (approver === undefined || sameActor(approver, job.requestedBy)) {
    return changed(
      `${env} needs a second permitted person's approval (environments.${env}.twoPersonRule was turned on since the click), and this ${action} was queued on ${mention(job.requestedBy)}'s confirmation alone; nothing was switched. Ask for it again: a permitted person confirms it, and a second one approves.`,
      'two_person_rule',
      undefined,
      `environments.${env}.twoPersonRule`,
    );
  }
  if (samePerson(approver, job.requestedBy, ctx.config)) {
    return changed(
      `${env} needs two different permitted people, and ${mention(approver)}, who approved this ${action}, is the person who confirmed it${linkedClause(approver, job.requestedBy, ctx.config)} in the configuration in force (it changed since the click); nothing was switched. Ask for it again: a permitted person confirms it, and a second one approves.`,
      'two_person_rule',
      { role: 'approvedBy', actor: approver },
      'people',
    );
  }
  return notPermitted('approvedBy', approver);
}

/**
 * Fail closed, but truthfully: a Slack user group on the allow list could not be checked. When the
 * lookup of one of them may pass, the person is told to try again; when Slack refused every one of them
 * for good, retrying cannot help, so the refusal names the config key, each group with Slack's code and
 * what it means, and what has to be fixed before a retry helps (`rejectedGroupsFix`). Undefined when no
 * listed group failed.
 */
function uncheckedGroupsRefusal(
  actor: ActingUser,
  environment: string,
  allow: Allow,
  context: Record<string, unknown>,
): Permission | undefined {
  const rejected = (actor.rejectedGroups ?? []).filter((r) => allow.slack.groups.includes(r.group));
  const isRejected = (g: string) => rejected.some((r) => r.group === g);
  const failed = allow.slack.groups.filter(
    (g) => actor.uncheckedGroups?.includes(g) === true || isRejected(g),
  );
  if (failed.length === 0) return undefined;
  const key = slackGroupsKey(environment);
  const refused = rejected.map((r) => `${r.group} (${r.code}): ${r.problem}`).join('; ');
  const passing = failed.filter((g) => !isRejected(g));
  if (passing.length > 0) {
    const also =
      rejected.length === 0
        ? ''
        : ` Slack also refuses for good to list the members of ${refused}. ${rejectedGroupsFix(rejected, key)}`;
    return forbidden(
      `${mention(actor)} may not roll back or promote ${environment} right now: Switchyard could not check your Slack user groups ` +
        `(looking up the members of ${passing.join(', ')} failed), and only a user group on its allow list could let you. ` +
        `Nothing was changed; try again in a moment.${also}`,
      { ...context, reason: 'groups_unavailable', groups: passing },
    );
  }
  return forbidden(
    `${mention(actor)} may not roll back or promote ${environment}: only a Slack user group on its allow list could let you, ` +
      `and Slack refuses for good to list the members of the user group${rejected.length === 1 ? '' : 's'} named in ${key}. ` +
      `${refused}. ${rejectedGroupsFix(rejected, key)} ` +
      `Meanwhile, an operator can add you under environments.${environment}.allow.slack.users. Nothing was changed.`,
    {
      ...context,
      reason: 'groups_rejected',
      key,
      groups: rejected.map(({ group, code }) => ({ group, code })),
    },
  );
}

/** A key under the config's `environments` naming no environment of the platform (see below). */
export interface UnknownEnvironmentKey {
  /** `environments.<key>` */
  readonly key: string;
  /**
   * The platform's environments left open to everyone because of it: on the local platform, those
   * without an allow list, when the unknown key has one (it was most likely meant for one of them).
   */
  readonly leavesOpen: readonly string[];
  /** What to tell the operator (names the key, the platform's environments and what it leaves open). */
  readonly message: string;
}

/**
 * The config's `environments` keys that name no environment of the platform (`environments` is the
 * platform's list), such as a typo (`prod:` for `production`). Their allow list and two-person rule
 * apply to nothing, and on the local platform, where an environment without an allow list is open to
 * everyone, the environment the key was meant for stays open: callers log these loudly at start.
 */
export function unknownEnvironmentKeys(
  config: Pick<Config, 'platform' | 'file'>,
  environments: readonly string[],
): UnknownEnvironmentKey[] {
  const known = new Set(environments);
  const unlisted = environments.filter((e) => config.file.environments[e]?.allow === undefined);
  return Object.entries(config.file.environments)
    .filter(([key]) => !known.has(key))
    .map(([key, settings]) => {
      const leavesOpen = config.platform === 'local' && settings.allow !== undefined ? unlisted : [];
      const open =
        leavesOpen.length === 0
          ? ''
          : ` ${nameList(leavesOpen)} ${leavesOpen.length === 1 ? 'has' : 'have'} no allow list, so on the local platform everyone may act on ${nameList(leavesOpen)}.`;
      return {
        key: `environments.${key}`,
        leavesOpen,
        message:
          `The config file (SWITCHYARD_CONFIG) sets environments.${key}, but the ${config.platform} platform has no environment "${key}" ` +
          `(it has: ${environments.join(', ') || 'none'}), so its settings (allow list, two-person rule) apply to nothing.${open} ` +
          `Rename the key to the environment it was meant for.`,
      };
    });
}

/**
 * What a worker's config makes of the switches it will take, when that is to refuse them: on a real
 * platform nobody is permitted on an environment without an allow list (`canAct`), and a worker judges
 * each queued switch's people by its own config (`queuedSwitchRefusal`), so a worker started without
 * the bots' file (no SWITCHYARD_CONFIG: a worker on a real platform can start on env vars alone)
 * refuses every switch, and one whose file leaves an environment without an allow list refuses every
 * switch of it. Only what the file says is known here (its `environments` keys): an environment the
 * bots act on that the file does not name is refused too, but is not listed. None on the local platform
 * (no allow list means everybody there). Each is a sentence naming what to change; `runWorker`
 * (jobs/worker-main.ts) logs them at warn.
 */
export function allowListWarnings(config: Pick<Config, 'env' | 'file' | 'platform'>): string[] {
  if (config.platform === 'local') return [];
  const path = config.env.SWITCHYARD_CONFIG;
  const named = Object.entries(config.file.environments);
  const why = `on the ${config.platform} platform nobody is permitted on an environment without an allow list`;
  if (!named.some(([, e]) => e.allow !== undefined)) {
    const what =
      path === undefined && named.length === 0
        ? 'SWITCHYARD_CONFIG is not set (no config file)'
        : `the config file (SWITCHYARD_CONFIG${path === undefined ? '' : `=${path}`}) gives no environment an allow list`;
    return [
      `${what}, and ${why}: this worker will refuse every switch it takes (forbidden, nothing switched). Give it the config file the bots run with (SWITCHYARD_CONFIG), whose environments.<name>.allow lists who may act.`,
    ];
  }
  const missing = named.filter(([, e]) => e.allow === undefined).map(([name]) => name);
  if (missing.length === 0) return [];
  const list = missing.join(', ');
  const one = missing.length === 1;
  return [
    `${one ? 'environment' : 'environments'} ${list} ${one ? 'has' : 'have'} no allow list in the config file (SWITCHYARD_CONFIG${path === undefined ? '' : `=${path}`}), and ${why}: this worker will refuse every switch of ${missing.join(' or ')} (forbidden, nothing switched). Add ${one ? `environments.${list}.allow` : 'environments.<name>.allow for each'} to the file the bots and workers share.`,
  ];
}

function nameList(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}
