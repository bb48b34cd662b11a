/**
 * The one view model of Switchyard's chat messages: plain, surface-independent data built by
 * src/views/model.ts and rendered by slack.ts, discord.ts and console.ts. Text is structured as spans
 * (plain, bold, code, italic, and a person) so that each renderer applies its own escaping and
 * formatting; nothing here is pre-escaped. Lists keep every item: renderers that must collapse a list show a count of what
 * they left out, never cut silently.
 */
import type { Action } from './actions.js';

/** Emphasis of a piece of text; renderers map it to their own markup. */
export type SpanStyle = 'bold' | 'code' | 'italic';

/** The surfaces a person acts through (`system`: Switchyard itself, such as the alert bot). */
export type PersonSurface = 'slack' | 'discord' | 'console' | 'system';

/** Who a person span names: the surface they acted on and their stable id there. */
export interface PersonRef {
  readonly surface: PersonSurface;
  /** Slack `U…`/`W…` id, Discord snowflake, console user name. */
  readonly userId: string;
  /**
   * Discord: the person's unique username, set only when it differs from the display name (the
   * span's `text`). Discord renders a mention with the server nickname any member sets, so the
   * username follows it: `<@id> (@mallory)`, which Discord shows as "@alice (@mallory)".
   */
  readonly username?: string;
}

/**
 * A piece of text. `text` is raw (user-controlled text included) and is escaped by each renderer.
 * With `person`, the span names that person and `text` is their display name: a name anyone can
 * choose (a Discord server nickname, a Slack handle that is unique only within one workspace), so a
 * renderer shows a person of its own surface as a mention the chat app resolves from the id (Slack
 * `<@U…>`, Discord `<@id>` followed by the username when it differs from the nickname, never pinging),
 * and where that cannot render, the name (with that username), saying the surface of a person of
 * another one ("alice (on Discord)", "alice (@mallory on Discord)").
 */
export interface Span {
  readonly text: string;
  readonly style?: SpanStyle;
  readonly person?: PersonRef;
}

/** A line of text made of spans. */
export type Rich = readonly Span[];

/** Overall colour/mood of a message or note. */
export const Tone = {
  neutral: 'neutral',
  info: 'info',
  success: 'success',
  warning: 'warning',
  danger: 'danger',
} as const;
export type Tone = (typeof Tone)[keyof typeof Tone];

/** A confirm dialog shown before a dangerous click takes effect (Slack `confirm`, console dialog). */
export interface ConfirmDialogView {
  /** ≤ 100 characters. */
  readonly title: string;
  /**
   * ≤ 300 characters, plain text: Slack documents the dialog's text as a `plain_text` object, so it
   * names people by display name only; the message above it identifies them (person spans).
   */
  readonly text: string;
  /** ≤ 30 characters. */
  readonly confirm: string;
  /** ≤ 30 characters. */
  readonly deny: string;
}

/** Button emphasis: `danger` for rollbacks, `primary` for promote/approve, `default` otherwise. */
export type ButtonStyle = 'primary' | 'danger' | 'default';

/** A button: what it says and the action id it sends back. */
export interface ButtonView {
  readonly label: string;
  readonly action: Action;
  /** `encodeAction(action)`, ≤ 100 characters. */
  readonly actionId: string;
  readonly style: ButtonStyle;
  readonly confirm?: ConfirmDialogView;
}

/** One deployment as the messages show it. */
export interface DeploymentCard {
  readonly id: string;
  readonly shortSha: string;
  readonly branch: string;
  /**
   * First line of the commit message (raw, may be hostile). Absent when the platform gives none (an
   * Unkey deployment carries its sha only): renderers leave it out.
   */
  readonly message?: string;
  /** The commit's author; absent when the platform gives none (Unkey), as `message`. */
  readonly author?: string;
  readonly status: string;
  /** "live for 2 hours 5 minutes" when known. */
  readonly live?: string;
  /** "created 3 hours ago". */
  readonly age?: string;
  /** Extra remarks such as the standby reactivation note. */
  readonly notes: readonly string[];
}

/** One item of a list (domains, traffic results, audit entries). */
export interface ListItem {
  readonly spans: Rich;
  /** Marks an item as good/bad (traffic verification); absent for plain items. */
  readonly state?: 'ok' | 'bad';
}

/** State of one job step; `not_reached` when the job ended before it. */
export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'skipped' | 'not_reached';

/** One step of a switch as the progress message shows it. */
export interface StepView {
  readonly step: string;
  readonly label: string;
  readonly state: StepState;
  /** "1.2 s" once ended; while running, when it started: "since 06:07:05 UTC". */
  readonly duration?: string;
  readonly detail?: string;
}

/** A row of the /deployments list. */
export interface DeploymentRow {
  readonly card: DeploymentCard;
  /** Short markers: `live`, `standby`, `building`, `failed`, `rolled back`, `not live`. */
  readonly markers: readonly string[];
  /** How many domains the router sends to this deployment now (when routing is known). */
  readonly servesDomains?: number;
  readonly buttons: readonly ButtonView[];
  /** Why a button could not be made for this row (ids too long for the id scheme). */
  readonly buttonNote?: string;
}

/** One argument of a command's usage. */
export interface UsageArg {
  readonly name: string;
  readonly placeholder: string;
  readonly required: boolean;
}

/** The building blocks of a message, in display order. */
export type ViewBlock =
  | { readonly type: 'text'; readonly spans: Rich; readonly tone?: Tone }
  | { readonly type: 'context'; readonly spans: Rich }
  | { readonly type: 'deployment'; readonly label: string; readonly card: DeploymentCard }
  | {
      readonly type: 'list';
      readonly label: string;
      /** Every item: renderers collapse with "…and N more". */
      readonly items: readonly ListItem[];
      /** Shown when the list is empty. */
      readonly empty?: string;
      /**
       * The items are the latest of a history read in part ("latest N"): a collapse says how many
       * more, never their count as a total.
       */
      readonly latest?: boolean;
    }
  | { readonly type: 'steps'; readonly steps: readonly StepView[] }
  | {
      readonly type: 'rows';
      readonly rows: readonly DeploymentRow[];
      /** Total deployments known; more than `rows.length` when the list was limited to recent ones. */
      readonly total: number;
      /**
       * `total` is only how many the platform adapter read (it stops at its read limit): the
       * environment has more. Renderers say "of the 500 deployments read" then, never "of 500".
       */
      readonly truncated?: true;
    }
  | { readonly type: 'usage'; readonly command: string; readonly args: readonly UsageArg[] };

/** Which message a view is. */
export type ViewKind = 'confirmation' | 'progress' | 'deployments' | 'refusal' | 'usage' | 'notice';

/** A whole chat message, surface-independent. */
export interface MessageView {
  readonly kind: ViewKind;
  readonly tone: Tone;
  /** Header line (plain text). */
  readonly title: string;
  /** One-line plain-text summary: notification/fallback text. */
  readonly summary: string;
  readonly blocks: readonly ViewBlock[];
  /** Message-level buttons (row buttons live in `rows`). */
  readonly buttons: readonly ButtonView[];
  /** Only the person who asked should see it (usage, refusals). */
  readonly ephemeral: boolean;
}
