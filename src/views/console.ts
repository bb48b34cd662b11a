/**
 * Console renderer: a MessageView as the plain JSON message the local console page (issue 5) shows.
 * Text stays raw spans — the page escapes HTML when it draws them, so nothing is pre-escaped here (a
 * commit message `<b>` must reach the page as `<b>`, not `&lt;b&gt;`). The console has no size limits,
 * so lists carry every item with their total; the page may fold them. The zod schema lets the page's
 * server side validate what it relays.
 */

import { z } from 'zod';
import { assertNever } from '../domain/types.js';
import { personLabel, usageLine } from './format.js';
import type { ButtonView, DeploymentCard, MessageView, Rich, ViewBlock } from './types.js';

const spanSchema = z.object({ text: z.string(), style: z.enum(['bold', 'code', 'italic']).optional() });
const spansSchema = z.array(spanSchema);
const toneSchema = z.enum(['neutral', 'info', 'success', 'warning', 'danger']);

const buttonSchema = z.object({
  label: z.string(),
  actionId: z.string().max(100),
  style: z.enum(['primary', 'danger', 'default']),
  confirm: z
    .object({ title: z.string(), text: z.string(), confirm: z.string(), deny: z.string() })
    .optional(),
});

const fieldSchema = z.object({ label: z.string(), value: spansSchema });

const blockSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), tone: toneSchema.optional(), spans: spansSchema }),
  z.object({ type: z.literal('context'), spans: spansSchema }),
  z.object({
    type: z.literal('deployment'),
    label: z.string(),
    fields: z.array(fieldSchema),
    notes: z.array(z.string()),
  }),
  z.object({
    type: z.literal('list'),
    label: z.string(),
    total: z.number().int(),
    items: z.array(z.object({ spans: spansSchema, state: z.enum(['ok', 'bad']).optional() })),
    empty: z.string().optional(),
  }),
  z.object({
    type: z.literal('steps'),
    steps: z.array(
      z.object({
        step: z.string(),
        label: z.string(),
        state: z.enum(['pending', 'running', 'done', 'failed', 'skipped', 'not_reached']),
        duration: z.string().optional(),
        detail: z.string().optional(),
      }),
    ),
  }),
  z.object({
    type: z.literal('rows'),
    total: z.number().int(),
    /** `total` is only how many deployments the platform adapter read: the environment has more. */
    truncated: z.literal(true).optional(),
    rows: z.array(
      z.object({
        id: z.string(),
        markers: z.array(z.string()),
        fields: z.array(fieldSchema),
        servesDomains: z.number().int().optional(),
        buttons: z.array(buttonSchema),
        note: z.string().optional(),
      }),
    ),
  }),
  z.object({ type: z.literal('usage'), text: z.string() }),
]);

/** The console message JSON (version 1). */
export const consoleMessageSchema = z.object({
  v: z.literal(1),
  kind: z.enum(['confirmation', 'progress', 'deployments', 'refusal', 'usage', 'notice']),
  tone: toneSchema,
  title: z.string(),
  summary: z.string(),
  ephemeral: z.boolean(),
  blocks: z.array(blockSchema),
  buttons: z.array(buttonSchema),
});
/** A console message as the page receives it. */
export type ConsoleMessage = z.infer<typeof consoleMessageSchema>;
/** One block of a console message. */
export type ConsoleBlock = z.infer<typeof blockSchema>;
/** A console button: label, action id, style, optional confirm dialog. */
export type ConsoleButton = z.infer<typeof buttonSchema>;
/** Raw text with an optional style; the page escapes it. */
export type ConsoleSpan = z.infer<typeof spanSchema>;

function spans(r: Rich): ConsoleSpan[] {
  return r.map((s) => {
    // The page has no mentions: a person by name, a Slack or Discord person saying so.
    const text = personLabel(s, 'console');
    return s.style === undefined ? { text } : { text, style: s.style };
  });
}

function cardFields(card: DeploymentCard): { label: string; value: ConsoleSpan[] }[] {
  return [
    { label: 'Deployment', value: [{ text: card.id, style: 'code' }] },
    { label: 'Commit', value: [{ text: card.shortSha, style: 'code' }, { text: ` ${card.branch}` }] },
    // What the platform does not say (an Unkey deployment's message and author) is left out.
    ...(card.message === undefined ? [] : [{ label: 'Message', value: [{ text: card.message }] }]),
    ...(card.author === undefined ? [] : [{ label: 'Author', value: [{ text: card.author }] }]),
    { label: 'Status', value: [{ text: card.status }] },
    ...(card.live === undefined ? [] : [{ label: 'Live', value: [{ text: card.live }] }]),
    ...(card.age === undefined ? [] : [{ label: 'Age', value: [{ text: card.age }] }]),
  ];
}

function button(b: ButtonView): ConsoleButton {
  return {
    label: b.label,
    actionId: b.actionId,
    style: b.style,
    ...(b.confirm === undefined ? {} : { confirm: { ...b.confirm } }),
  };
}

function block(b: ViewBlock): ConsoleBlock {
  switch (b.type) {
    case 'text':
      return { type: 'text', ...(b.tone === undefined ? {} : { tone: b.tone }), spans: spans(b.spans) };
    case 'context':
      return { type: 'context', spans: spans(b.spans) };
    case 'deployment':
      return { type: 'deployment', label: b.label, fields: cardFields(b.card), notes: [...b.card.notes] };
    case 'list':
      return {
        type: 'list',
        label: b.label,
        total: b.items.length,
        items: b.items.map((it) => ({
          spans: spans(it.spans),
          ...(it.state === undefined ? {} : { state: it.state }),
        })),
        ...(b.empty === undefined ? {} : { empty: b.empty }),
      };
    case 'steps':
      return {
        type: 'steps',
        steps: b.steps.map((s) => ({
          step: s.step,
          label: s.label,
          state: s.state,
          ...(s.duration === undefined ? {} : { duration: s.duration }),
          ...(s.detail === undefined ? {} : { detail: s.detail }),
        })),
      };
    case 'rows':
      return {
        type: 'rows',
        total: b.total,
        ...(b.truncated ? { truncated: true as const } : {}),
        rows: b.rows.map((r) => ({
          id: r.card.id,
          markers: [...r.markers],
          fields: cardFields(r.card),
          ...(r.servesDomains === undefined ? {} : { servesDomains: r.servesDomains }),
          buttons: r.buttons.map(button),
          ...(r.buttonNote === undefined ? {} : { note: r.buttonNote }),
        })),
      };
    case 'usage':
      return {
        type: 'usage',
        text: usageLine(b.command, b.args),
      };
    default:
      return assertNever(b, 'view block');
  }
}

/** Renders a view as the console's JSON message (raw text; the page escapes). */
export function renderConsole(view: MessageView): ConsoleMessage {
  return {
    v: 1,
    kind: view.kind,
    tone: view.tone,
    title: view.title,
    summary: view.summary,
    ephemeral: view.ephemeral,
    blocks: view.blocks.map(block),
    buttons: view.buttons.map(button),
  };
}
