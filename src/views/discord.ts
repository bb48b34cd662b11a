/**
 * Discord renderer: a MessageView as one embed plus button action rows, ready for discord.js
 * `channel.send`, `message.edit` and `interaction.reply` as-is (plain API JSON). Owns Discord's limits
 * (embed title 256, description 4096, ≤ 25 fields, field name 256 / value 1024, 6000 characters in
 * total; ≤ 5 action rows of ≤ 5 buttons, label 80, custom_id 100) and escaping: user text has every
 * markdown character backslash-escaped, and `allowed_mentions.parse` is empty so `@everyone`, roles
 * and users never ping (also given as discord.js's `allowedMentions` option). The only mentions are
 * person spans of Discord people, written `<@id>` (they render in the embed description and field
 * values, and never ping: embeds do not, and the empty `parse` covers `content`). Discord shows such a
 * mention with the member's server nickname, which anyone sets for themselves, so the unique username
 * follows whenever it differs from that name: `<@id> (@mallory)`. Others are named, saying their surface.
 * Long lists collapse with "…and N more"; buttons that do not fit are counted.
 * Type-only imports: no discord.js code runs here.
 */
import type {
  APIActionRowComponent,
  APIButtonComponentWithCustomId,
  APIEmbed,
  APIEmbedField,
} from 'discord-api-types/v10';
import { assertNever } from '../domain/types.js';
import { fitLines, moreLine, personLabel, shownOf, splitSpace, truncate } from './format.js';
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
} from './types.js';

/** Discord's documented message limits this renderer respects. */
export const DISCORD_LIMITS = {
  title: 256,
  description: 4096,
  fields: 25,
  fieldName: 256,
  fieldValue: 1024,
  embedTotal: 6000,
  actionRows: 5,
  buttonsPerRow: 5,
  buttonLabel: 80,
  customId: 100,
  content: 2000,
} as const;

/** A Discord message body (REST and discord.js options alike). */
export interface DiscordMessage {
  readonly content?: string;
  readonly embeds: APIEmbed[];
  readonly components: APIActionRowComponent<APIButtonComponentWithCustomId>[];
  /** Always `{ parse: [] }`: nothing in a Switchyard message pings anyone (raw REST body key). */
  readonly allowed_mentions: { parse: [] };
  /**
   * The same, under the option name discord.js reads (`channel.send`, `message.edit`,
   * `interaction.reply` build the REST body from `allowedMentions` and ignore `allowed_mentions`).
   */
  readonly allowedMentions: { parse: [] };
}

/** Tuning of the Discord renderer. */
export interface DiscordRenderOptions {
  /** Items of a list shown before "…and N more" (default 15; lowered automatically to fit 6000). */
  readonly maxListItems?: number;
}

/**
 * Escapes text for Discord markdown: a backslash before every character that could format, quote,
 * link or mention (`\ * _ ~ \` | > < [ ] ( ) # - @`; `<` also covers timestamps and custom emoji), so a
 * hostile commit message shows literally.
 */
export function escapeDiscord(text: string): string {
  return text.replace(/[\\*_~`|<>[\]()#\-@]/g, (ch) => `\\${ch}`);
}

function wrap(text: string, marker: string, forbidden: string): string {
  const { lead, core, tail } = splitSpace(text);
  if (core === '' || core.includes('\n')) return escapeDiscord(text);
  if (marker === '`') {
    // inside code nothing is parsed, so no escaping; a backtick cannot appear inside, fall back to plain
    if (core.includes(forbidden)) return escapeDiscord(text);
    return `${lead}\`${core}\`${tail}`;
  }
  return `${lead}${marker}${escapeDiscord(core)}${marker}${tail}`;
}

/** A Discord user id (a snowflake); anything else is not mentioned. */
const DISCORD_USER_ID = /^\d{1,20}$/;

function span(s: Span): string {
  if (s.person !== undefined) {
    // A Discord person as a mention Discord resolves from the id: the name in `text` is a server
    // nickname any member can set. Discord shows the mention with that nickname too (an impostor
    // nicknamed "alice" reads "@alice"), so the unique username follows when it differs from it:
    // "@alice (@mallory)". Anyone else by name, saying their surface.
    if (s.person.surface === 'discord' && DISCORD_USER_ID.test(s.person.userId)) {
      const username = s.person.username;
      return `<@${s.person.userId}>${username === undefined ? '' : ` ${escapeDiscord(`(@${username})`)}`}`;
    }
    return span({ text: personLabel(s, 'discord'), ...(s.style === undefined ? {} : { style: s.style }) });
  }
  switch (s.style) {
    case undefined:
      return escapeDiscord(s.text);
    case 'bold':
      return wrap(s.text, '**', '');
    case 'italic':
      return wrap(s.text, '*', '');
    case 'code':
      return wrap(s.text, '`', '`');
    default:
      return assertNever(s.style, 'span style');
  }
}

/** Renders spans as Discord markdown. */
export function discordMarkdown(spans: Rich): string {
  return spans.map(span).join('');
}

const TONE_COLOR: Readonly<Record<Tone, number>> = {
  neutral: 0x95a5a6,
  info: 0x3498db,
  success: 0x2ecc71,
  warning: 0xf1c40f,
  danger: 0xe74c3c,
};

const TONE_ICON: Readonly<Record<Tone, string>> = {
  neutral: '',
  info: 'ℹ️ ',
  success: '✅ ',
  warning: '⚠️ ',
  danger: '🚨 ',
};

const STEP_ICON: Readonly<Record<StepState, string>> = {
  pending: '⚪',
  running: '⏳',
  done: '✅',
  failed: '❌',
  skipped: '⏩',
  not_reached: '➖',
};

const STEP_WORD: Readonly<Record<StepState, string>> = {
  pending: '',
  running: ' (running)',
  done: '',
  failed: ' (failed)',
  skipped: ' (skipped)',
  not_reached: ' (not reached)',
};

const BUTTON_STYLE = { primary: 1, default: 2, danger: 4 } as const;

function code(text: string): string {
  return text.includes('`') ? escapeDiscord(text) : `\`${text}\``;
}

function cardValue(card: DeploymentCard): string {
  const lines = [
    [code(card.id), code(card.shortSha), escapeDiscord(card.branch), escapeDiscord(card.status)].join(' · '),
    // What the platform does not say (an Unkey deployment's message and author) is left out.
    ...(card.message === undefined ? [] : [`> ${escapeDiscord(card.message)}`]),
    [
      ...(card.author === undefined ? [] : [`by ${escapeDiscord(card.author)}`]),
      ...(card.live === undefined ? [] : [escapeDiscord(card.live)]),
      ...(card.age === undefined ? [] : [escapeDiscord(card.age)]),
    ].join(' · '),
    ...card.notes.map((n) => `⏳ *${escapeDiscord(n)}*`),
  ].filter((l) => l !== '');
  return truncate(lines.join('\n'), DISCORD_LIMITS.fieldValue);
}

function listValue(
  items: readonly ListItem[],
  empty: string | undefined,
  maxItems: number,
  latest: boolean,
): string {
  if (items.length === 0) return `*${escapeDiscord(empty ?? 'None.')}*`;
  return fitLines(
    items,
    (item) => {
      const mark = item.state === 'ok' ? '✅ ' : item.state === 'bad' ? '❌ ' : '• ';
      return truncate(`${mark}${discordMarkdown(item.spans)}`, 300);
    },
    {
      budget: DISCORD_LIMITS.fieldValue - 40,
      maxItems,
      more: (rest, total) => `*${moreLine(rest, total, latest)}*`,
    },
  ).join('\n');
}

function rowField(row: DeploymentRow): APIEmbedField {
  const card = row.card;
  const name = [card.id, card.status, ...row.markers.filter((m) => m !== card.status)]
    .map(escapeDiscord)
    .join(' · ');
  const value = [
    [
      code(card.shortSha),
      escapeDiscord(card.branch),
      ...(card.author === undefined ? [] : [`by ${escapeDiscord(card.author)}`]),
      ...(row.servesDomains === undefined
        ? []
        : [`serves ${row.servesDomains} domain${row.servesDomains === 1 ? '' : 's'}`]),
    ].join(' · '),
    escapeDiscord(card.message ?? ''),
    [
      ...(card.live === undefined ? [] : [escapeDiscord(card.live)]),
      ...(card.age === undefined ? [] : [escapeDiscord(card.age)]),
    ].join(' · '),
    ...(row.buttonNote === undefined ? [] : [`*${escapeDiscord(row.buttonNote)}*`]),
  ]
    .filter((l) => l !== '')
    .join('\n');
  return {
    name: truncate(name, DISCORD_LIMITS.fieldName),
    value: truncate(value, DISCORD_LIMITS.fieldValue),
  };
}

/** Discord-style usage line: `/rollback environment:<environment> [deployment:<deployment-id>]`. */
export function discordUsage(command: string, args: readonly UsageArg[]): string {
  return `/${command} ${args.map((a) => (a.required ? `${a.name}:<${a.placeholder}>` : `[${a.name}:<${a.placeholder}>]`)).join(' ')}`;
}

interface EmbedParts {
  description: string[];
  fields: APIEmbedField[];
  /** Row buttons in row order, each labelled with its deployment. */
  rowButtons: ButtonView[];
}

function collect(view: MessageView, maxItems: number): EmbedParts {
  const parts: EmbedParts = { description: [], fields: [], rowButtons: [] };
  for (const block of view.blocks) {
    switch (block.type) {
      case 'text':
        parts.description.push(
          `${block.tone === undefined ? '' : TONE_ICON[block.tone]}${discordMarkdown(block.spans)}`,
        );
        break;
      case 'context':
        parts.description.push(`*${discordMarkdown(block.spans)}*`);
        break;
      case 'deployment':
        parts.fields.push({
          name: truncate(escapeDiscord(block.label), DISCORD_LIMITS.fieldName),
          value: cardValue(block.card),
        });
        break;
      case 'list':
        parts.fields.push({
          name: truncate(escapeDiscord(block.label), DISCORD_LIMITS.fieldName),
          value: listValue(block.items, block.empty, maxItems, block.latest === true),
        });
        break;
      case 'steps':
        parts.description.push(
          block.steps
            .map(
              (s) =>
                `${STEP_ICON[s.state]} ${escapeDiscord(s.label)}${s.duration === undefined ? '' : ` — ${escapeDiscord(s.duration)}`}${escapeDiscord(STEP_WORD[s.state])}${s.detail === undefined ? '' : `: ${escapeDiscord(s.detail)}`}`,
            )
            .join('\n'),
        );
        break;
      case 'rows':
        for (const row of block.rows) {
          parts.fields.push(rowField(row));
          parts.rowButtons.push(...row.buttons);
        }
        if (block.total > block.rows.length || block.truncated) parts.description.push(`*${shownOf(block)}*`);
        break;
      case 'usage':
        parts.description.push(`**Usage:** ${code(discordUsage(block.command, block.args))}`);
        break;
      default:
        return assertNever(block, 'view block');
    }
  }
  return parts;
}

/** Characters Discord counts toward the 6000 total of an embed. */
export function embedLength(embed: APIEmbed): number {
  let n = (embed.title ?? '').length + (embed.description ?? '').length;
  n += (embed.footer?.text ?? '').length + (embed.author?.name ?? '').length;
  for (const f of embed.fields ?? []) n += f.name.length + f.value.length;
  return n;
}

function buildEmbed(
  view: MessageView,
  maxItems: number,
  extraLines: readonly string[],
): { embed: APIEmbed; rowButtons: ButtonView[] } {
  const parts = collect(view, maxItems);
  let fields = parts.fields;
  const description = [...parts.description, ...extraLines];
  if (fields.length > DISCORD_LIMITS.fields) {
    const kept = fields.slice(0, DISCORD_LIMITS.fields - 1);
    const dropped = fields.length - kept.length;
    kept.push({ name: '…', value: `*…and ${dropped} more sections not shown (Discord allows 25 fields).*` });
    fields = kept;
  }
  const embed: APIEmbed = {
    title: truncate(`${TONE_ICON[view.tone]}${escapeDiscord(view.title)}`, DISCORD_LIMITS.title),
    color: TONE_COLOR[view.tone],
    ...(description.length === 0
      ? {}
      : { description: truncate(description.join('\n\n'), DISCORD_LIMITS.description) }),
    ...(fields.length === 0 ? {} : { fields }),
  };
  return { embed, rowButtons: parts.rowButtons };
}

function buttonComponent(bv: ButtonView): APIButtonComponentWithCustomId {
  return {
    type: 2,
    style: BUTTON_STYLE[bv.style],
    label: truncate(bv.label, DISCORD_LIMITS.buttonLabel),
    custom_id: bv.actionId,
  };
}

/**
 * Renders a view as a Discord message. The embed stays within 6000 characters by showing fewer list
 * items (the counts stay exact), then by trimming the longest texts; buttons beyond 25 are counted in
 * the embed instead of being dropped silently.
 */
export function renderDiscord(view: MessageView, opts: DiscordRenderOptions = {}): DiscordMessage {
  const capacity = DISCORD_LIMITS.actionRows * DISCORD_LIMITS.buttonsPerRow;
  // message buttons (confirm/cancel) matter more than row buttons: keep them when trimming
  const messageButtons = view.buttons.slice(0, capacity);
  const rowButtons = collect(view, 1).rowButtons;
  const keptRows = rowButtons.slice(0, capacity - messageButtons.length);
  const droppedButtons = rowButtons.length - keptRows.length + (view.buttons.length - messageButtons.length);
  const extra =
    droppedButtons > 0
      ? [
          `*${droppedButtons} more action${droppedButtons === 1 ? '' : 's'} not shown as buttons (Discord allows 25): use /rollback or /promote with the deployment id.*`,
        ]
      : [];

  let maxItems = Math.max(1, opts.maxListItems ?? 15);
  let { embed } = buildEmbed(view, maxItems, extra);
  while (embedLength(embed) > DISCORD_LIMITS.embedTotal && maxItems > 1) {
    maxItems = Math.max(1, Math.floor(maxItems / 2));
    embed = buildEmbed(view, maxItems, extra).embed;
  }
  if (embedLength(embed) > DISCORD_LIMITS.embedTotal) embed = shrink(embed);

  const buttons = [...keptRows, ...messageButtons];
  const components: APIActionRowComponent<APIButtonComponentWithCustomId>[] = [];
  for (let k = 0; k < buttons.length; k += DISCORD_LIMITS.buttonsPerRow) {
    components.push({
      type: 1,
      components: buttons.slice(k, k + DISCORD_LIMITS.buttonsPerRow).map(buttonComponent),
    });
  }
  return { embeds: [embed], components, allowed_mentions: { parse: [] }, allowedMentions: { parse: [] } };
}

/** Last resort for the 6000 total: cut field values and the description to equal shares. */
function shrink(embed: APIEmbed): APIEmbed {
  const fields = embed.fields ?? [];
  const fixed = (embed.title ?? '').length + fields.reduce((n, f) => n + f.name.length, 0);
  const parts = fields.length + (embed.description === undefined ? 0 : 1);
  const share = Math.max(20, Math.floor((DISCORD_LIMITS.embedTotal - fixed - 10) / Math.max(1, parts)));
  return {
    ...embed,
    ...(embed.description === undefined ? {} : { description: truncate(embed.description, share) }),
    ...(fields.length === 0
      ? {}
      : { fields: fields.map((f) => ({ ...f, value: truncate(f.value, share) })) }),
  };
}
