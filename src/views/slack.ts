/**
 * Slack renderer: a MessageView as Block Kit `{ text, blocks }`, ready for Bolt's `chat.postMessage`,
 * `chat.update` and `respond` as-is. Owns Slack's limits (50 blocks, section text 3000, header 150,
 * button text 75, confirm object 100/300/30, context 10 elements, actions 25 elements) and mrkdwn
 * escaping of user-controlled text (`&`, `<`, `>`; mrkdwn objects are `verbatim` so nothing is
 * auto-linked or turned into a mention). The only mentions are person spans of Slack people, written
 * `<@U…>` (Slack resolves the id to the real person, with their organisation in a Slack Connect
 * channel; `verbatim` keeps such explicit mentions), and only when asked (`mentions`): Slack notifies
 * everyone mentioned in a message that is posted, so a posted message names people by name and only an
 * edit (`chat.update`, which as we understand Slack notifies nobody it mentions) carries mentions.
 * plain_text places (header, buttons, the confirm dialog, the `text` fallback) keep display names.
 * Long lists are collapsed with an explicit "…and N more".
 * Type-only imports: no Slack SDK code runs here.
 */
import type {
  ActionsBlock,
  Button,
  ContextBlock,
  HeaderBlock,
  KnownBlock,
  MrkdwnElement,
  PlainTextElement,
  SectionBlock,
} from '@slack/types';
import { assertNever } from '../domain/types.js';
import { fitLines, moreLine, personLabel, shownOf, splitSpace, truncate, usageLine } from './format.js';
import type {
  ButtonView,
  DeploymentCard,
  DeploymentRow,
  ListItem,
  MessageView,
  Rich,
  Span,
  StepState,
  Tone,
  UsageArg,
  ViewBlock,
} from './types.js';

/** Slack's documented Block Kit limits this renderer respects. */
export const SLACK_LIMITS = {
  blocks: 50,
  sectionText: 3000,
  headerText: 150,
  buttonText: 75,
  actionId: 255,
  buttonValue: 2000,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  contextElements: 10,
  actionsElements: 25,
  /** Top-level `text` (Slack truncates messages over 40,000 characters). */
  text: 40_000,
} as const;

/** A Block Kit message body; add `channel` (and `ts` to update). */
export interface SlackMessage {
  /** Fallback and notification text; always set. */
  readonly text: string;
  readonly blocks: KnownBlock[];
}

/** Tuning of the Slack renderer. */
export interface SlackRenderOptions {
  /** Items of a list shown before "…and N more" (default 15). */
  readonly maxListItems?: number;
  /**
   * Write Slack people as mentions (`<@U…>`) rather than by name (default false). Only for a message
   * that replaces one already posted (`chat.update`): Slack has no `allowed_mentions`, and a mention in
   * a posted message (`chat.postMessage`) notifies that person, so a `/deployments` would ping everyone
   * in its recent activity and a request joining someone's plan would ping them. As we understand Slack,
   * an edit notifies nobody it mentions, and the edits are where the identity matters (the approval
   * prompt of the two-person rule, progress, cancelled, expired). Off by default, so a new way of posting
   * cannot ping people by forgetting it.
   */
  readonly mentions?: boolean;
}

/** Escapes text for Slack mrkdwn: the three control characters `&`, `<`, `>`. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Wraps `inner` in a mrkdwn marker, keeping surrounding whitespace outside (Slack needs that). */
function wrap(text: string, marker: string): string {
  const { lead, core, tail } = splitSpace(text);
  if (core === '' || core.includes(marker) || core.includes('\n')) return escapeMrkdwn(text);
  return `${lead}${marker}${escapeMrkdwn(core)}${marker}${tail}`;
}

/** A Slack user id as payloads carry it (`U…`, or `W…` in Enterprise Grid); anything else is not mentioned. */
const SLACK_USER_ID = /^[UW][A-Z0-9]{1,30}$/;

function span(s: Span, mentions: boolean): string {
  if (s.person !== undefined) {
    // A Slack person as a mention Slack resolves from the id: the handle in `text` is unique only within
    // one workspace (Slack Connect). Anyone else, and everyone in a message that is posted (a mention
    // there notifies: see `SlackRenderOptions.mentions`), by name, saying the surface of someone else's.
    if (mentions && s.person.surface === 'slack' && SLACK_USER_ID.test(s.person.userId))
      return `<@${s.person.userId}>`;
    return span(
      { text: personLabel(s, 'slack'), ...(s.style === undefined ? {} : { style: s.style }) },
      false,
    );
  }
  switch (s.style) {
    case undefined:
      return escapeMrkdwn(s.text);
    case 'bold':
      return wrap(s.text, '*');
    case 'italic':
      return wrap(s.text, '_');
    case 'code':
      return wrap(s.text, '`');
    default:
      return assertNever(s.style, 'span style');
  }
}

/** Renders spans as mrkdwn; Slack people as mentions only with `mentions` (see SlackRenderOptions). */
export function mrkdwn(spans: Rich, opts: Pick<SlackRenderOptions, 'mentions'> = {}): string {
  const mentions = opts.mentions === true;
  return spans.map((s) => span(s, mentions)).join('');
}

function md(text: string): MrkdwnElement {
  return { type: 'mrkdwn', text: text === '' ? ' ' : text, verbatim: true };
}

function plain(text: string, max: number): PlainTextElement {
  return { type: 'plain_text', text: truncate(text === '' ? ' ' : text, max), emoji: true };
}

const TONE_ICON: Readonly<Record<Tone, string>> = {
  neutral: '',
  info: ':information_source: ',
  success: ':white_check_mark: ',
  warning: ':warning: ',
  danger: ':rotating_light: ',
};

const STEP_ICON: Readonly<Record<StepState, string>> = {
  pending: ':white_circle:',
  running: ':hourglass_flowing_sand:',
  done: ':white_check_mark:',
  failed: ':x:',
  skipped: ':fast_forward:',
  not_reached: ':heavy_minus_sign:',
};

const STEP_WORD: Readonly<Record<StepState, string>> = {
  pending: '',
  running: ' (running)',
  done: '',
  failed: ' (failed)',
  skipped: ' (skipped)',
  not_reached: ' (not reached)',
};

function section(text: string): SectionBlock {
  return { type: 'section', text: md(truncate(text, SLACK_LIMITS.sectionText)) };
}

function context(text: string): ContextBlock {
  return { type: 'context', elements: [md(truncate(text, SLACK_LIMITS.sectionText))] };
}

function cardText(label: string, card: DeploymentCard): string {
  const head = [
    `\`${escapeMrkdwn(card.id)}\``,
    `\`${escapeMrkdwn(card.shortSha)}\``,
    escapeMrkdwn(card.branch),
    escapeMrkdwn(card.status),
    ...(card.live === undefined ? [] : [escapeMrkdwn(card.live)]),
  ].join(' · ');
  const lines = [
    `*${escapeMrkdwn(label)}*`,
    head,
    // What the platform does not say (an Unkey deployment's message and author) is left out.
    ...(card.message === undefined ? [] : [`>${escapeMrkdwn(card.message)}`]),
    [
      ...(card.author === undefined ? [] : [`by ${escapeMrkdwn(card.author)}`]),
      ...(card.age === undefined ? [] : [escapeMrkdwn(card.age)]),
    ].join(' · '),
    ...card.notes.map((n) => `:hourglass: _${escapeMrkdwn(n)}_`),
  ].filter((l) => l !== '');
  return lines.join('\n');
}

/** The render options resolved once per message. */
interface RenderContext {
  readonly maxItems: number;
  readonly mentions: boolean;
}

/**
 * Lines of a list, collapsed to fit both `maxItems` and the section limit, ending with
 * "…and N more (T in total)" whenever anything is left out ("…and N more" for the `latest` lines of a
 * history: their count is no total).
 */
function listText(
  label: string,
  items: readonly ListItem[],
  empty: string | undefined,
  latest: boolean,
  opts: RenderContext,
): string {
  const headLine = `*${escapeMrkdwn(label)}*`;
  if (items.length === 0) return `${headLine}\n_${escapeMrkdwn(empty ?? 'None.')}_`;
  const lines = fitLines(
    items,
    (item) => {
      const mark = item.state === 'ok' ? ':white_check_mark: ' : item.state === 'bad' ? ':x: ' : '• ';
      return truncate(`${mark}${mrkdwn(item.spans, opts)}`, 500);
    },
    {
      budget: SLACK_LIMITS.sectionText - 80,
      used: headLine.length,
      maxItems: opts.maxItems,
      more: (rest, total) => `_${moreLine(rest, total, latest)}_`,
    },
  );
  return [headLine, ...lines].join('\n');
}

/** Slack-style usage line: `/rollback <environment> [deployment-id]`. */
export function slackUsage(command: string, args: readonly UsageArg[]): string {
  return usageLine(command, args);
}

function buttonElement(bv: ButtonView): Button {
  const el: Button = {
    type: 'button',
    text: plain(bv.label, SLACK_LIMITS.buttonText),
    action_id: bv.actionId,
    value: bv.actionId,
  };
  if (bv.style !== 'default') el.style = bv.style;
  if (bv.confirm !== undefined) {
    el.confirm = {
      title: plain(bv.confirm.title, SLACK_LIMITS.confirmTitle),
      text: plain(bv.confirm.text, SLACK_LIMITS.confirmText),
      confirm: plain(bv.confirm.confirm, SLACK_LIMITS.confirmButton),
      deny: plain(bv.confirm.deny, SLACK_LIMITS.confirmButton),
      ...(bv.style === 'danger' ? { style: 'danger' as const } : {}),
    };
  }
  return el;
}

function actions(buttons: readonly ButtonView[]): ActionsBlock {
  return { type: 'actions', elements: buttons.slice(0, SLACK_LIMITS.actionsElements).map(buttonElement) };
}

function rowBlocks(row: DeploymentRow): KnownBlock[] {
  const card = row.card;
  const head = [
    `*\`${escapeMrkdwn(card.id)}\`*`,
    `\`${escapeMrkdwn(card.shortSha)}\``,
    escapeMrkdwn(card.branch),
    escapeMrkdwn(card.status),
    ...row.markers.filter((m) => m !== card.status).map((m) => `*${escapeMrkdwn(m)}*`),
    ...(row.servesDomains === undefined
      ? []
      : [`serves ${row.servesDomains} domain${row.servesDomains === 1 ? '' : 's'}`]),
  ].join(' · ');
  const tail = [
    ...(card.author === undefined ? [] : [escapeMrkdwn(card.author)]),
    ...(card.live === undefined ? [] : [escapeMrkdwn(card.live)]),
    ...(card.age === undefined ? [] : [escapeMrkdwn(card.age)]),
  ].join(' · ');
  const about = [
    ...(card.message === undefined ? [] : [escapeMrkdwn(card.message)]),
    ...(tail === '' ? [] : [tail]),
  ];
  const main = section(about.length === 0 ? head : `${head}\n${about.join(' — ')}`);
  const [only] = row.buttons;
  // one button sits beside its row (section accessory): one block per row instead of two
  const blocks: KnownBlock[] = [
    row.buttons.length === 1 && only !== undefined ? { ...main, accessory: buttonElement(only) } : main,
  ];
  if (row.buttons.length > 1) blocks.push(actions(row.buttons));
  if (row.buttonNote !== undefined) blocks.push(context(escapeMrkdwn(row.buttonNote)));
  return blocks;
}

function renderBlock(block: ViewBlock, opts: RenderContext): KnownBlock[] {
  switch (block.type) {
    case 'text':
      return [
        section(`${block.tone === undefined ? '' : TONE_ICON[block.tone]}${mrkdwn(block.spans, opts)}`),
      ];
    case 'context':
      return [context(mrkdwn(block.spans, opts))];
    case 'deployment':
      return [section(cardText(block.label, block.card))];
    case 'list':
      return [section(listText(block.label, block.items, block.empty, block.latest === true, opts))];
    case 'steps':
      return [
        section(
          block.steps
            .map(
              (s) =>
                `${STEP_ICON[s.state]} ${escapeMrkdwn(s.label)}${s.duration === undefined ? '' : ` — ${escapeMrkdwn(s.duration)}`}${STEP_WORD[s.state]}${s.detail === undefined ? '' : `: ${escapeMrkdwn(s.detail)}`}`,
            )
            .join('\n'),
        ),
      ];
    case 'rows': {
      const out: KnownBlock[] = [];
      for (const row of block.rows) out.push(...rowBlocks(row));
      if (block.total > block.rows.length || block.truncated) out.push(context(shownOf(block)));
      return out;
    }
    case 'usage':
      return [section(`*Usage:* \`${escapeMrkdwn(slackUsage(block.command, block.args))}\``)];
    default:
      return assertNever(block, 'view block');
  }
}

/**
 * Renders a view as Block Kit. Never exceeds 50 blocks: when a view would, the middle is replaced by
 * a context block saying how many blocks were left out (the message buttons always stay). People are
 * named by name unless `opts.mentions` (for an edit only: see SlackRenderOptions).
 */
export function renderSlack(view: MessageView, opts: SlackRenderOptions = {}): SlackMessage {
  const ctx: RenderContext = {
    maxItems: Math.max(1, opts.maxListItems ?? 15),
    mentions: opts.mentions === true,
  };
  const header: HeaderBlock = {
    type: 'header',
    text: plain(`${TONE_ICON[view.tone]}${view.title}`, SLACK_LIMITS.headerText),
  };
  let body: KnownBlock[] = view.blocks.flatMap((b) => renderBlock(b, ctx));
  const tail: KnownBlock[] = view.buttons.length > 0 ? [{ type: 'divider' }, actions(view.buttons)] : [];
  const room = SLACK_LIMITS.blocks - 1 - tail.length;
  if (body.length > room) {
    const keep = room - 1;
    const dropped = body.length - keep;
    body = [
      ...body.slice(0, keep),
      context(`_…and ${dropped} more blocks not shown (Slack allows 50 per message)._`),
    ];
  }
  return {
    text: truncate(escapeMrkdwn(view.summary === '' ? view.title : view.summary), SLACK_LIMITS.text),
    blocks: [header, ...body, ...tail],
  };
}
