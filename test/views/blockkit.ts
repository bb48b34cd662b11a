/**
 * Structural rules of Slack Block Kit messages and Discord message payloads, encoded as strict zod
 * schemas from the platforms' reference docs (Slack: blocks, composition objects, button element;
 * Discord: embed limits, message components, allowed mentions). Unknown keys are errors, so a renderer
 * that invents a field fails here exactly as the real API would reject it.
 */
import { z } from 'zod';

// ── Slack ──────────────────────────────────────────────────────────────────────────────────────

/** Text object: plain_text (optional `emoji`) or mrkdwn (optional `verbatim`); text 1..3000. */
const plainText = (max = 3000) =>
  z.strictObject({
    type: z.literal('plain_text'),
    text: z.string().min(1).max(max),
    emoji: z.boolean().optional(),
  });
const mrkdwnText = (max = 3000) =>
  z.strictObject({
    type: z.literal('mrkdwn'),
    text: z.string().min(1).max(max),
    verbatim: z.boolean().optional(),
  });
const textObject = (max = 3000) => z.discriminatedUnion('type', [plainText(max), mrkdwnText(max)]);

/** Confirmation dialog object: title plain ≤ 100, text ≤ 300, confirm/deny plain ≤ 30, style. */
const confirmDialog = z.strictObject({
  title: plainText(100),
  text: textObject(300),
  confirm: plainText(30),
  deny: plainText(30),
  style: z.enum(['primary', 'danger']).optional(),
});

/** Button element: text plain ≤ 75, action_id ≤ 255, value ≤ 2000, url ≤ 3000, style, confirm. */
const button = z.strictObject({
  type: z.literal('button'),
  text: plainText(75),
  action_id: z.string().min(1).max(255).optional(),
  value: z.string().max(2000).optional(),
  url: z.string().max(3000).optional(),
  style: z.enum(['primary', 'danger']).optional(),
  confirm: confirmDialog.optional(),
  accessibility_label: z.string().max(75).optional(),
});

const blockId = z.string().min(1).max(255).optional();

const header = z.strictObject({ type: z.literal('header'), text: plainText(150), block_id: blockId });
const section = z
  .strictObject({
    type: z.literal('section'),
    text: textObject(3000).optional(),
    fields: z.array(textObject(2000)).min(1).max(10).optional(),
    accessory: button.optional(),
    block_id: blockId,
    expand: z.boolean().optional(),
  })
  .refine((s) => s.text !== undefined || s.fields !== undefined, 'section needs text or fields');
const context = z.strictObject({
  type: z.literal('context'),
  elements: z.array(textObject(3000)).min(1).max(10),
  block_id: blockId,
});
const actions = z.strictObject({
  type: z.literal('actions'),
  elements: z.array(button).min(1).max(25),
  block_id: blockId,
});
const divider = z.strictObject({ type: z.literal('divider'), block_id: blockId });

const block = z.union([header, section, context, actions, divider]);

/** A `chat.postMessage`/`chat.update` body as the renderer makes it (channel/ts added by the caller). */
export const slackMessageSchema = z
  .strictObject({ text: z.string().min(1).max(40_000), blocks: z.array(block).min(1).max(50) })
  .superRefine((msg, ctx) => {
    const ids = new Set<string>();
    for (const b of msg.blocks) {
      const elements =
        b.type === 'actions'
          ? b.elements
          : b.type === 'section' && b.accessory !== undefined
            ? [b.accessory]
            : [];
      for (const el of elements) {
        if (el.action_id === undefined) continue;
        if (ids.has(el.action_id))
          ctx.addIssue({ code: 'custom', message: `duplicate action_id ${el.action_id}` });
        ids.add(el.action_id);
      }
    }
  });

// ── Discord ────────────────────────────────────────────────────────────────────────────────────

const embedField = z.strictObject({
  name: z.string().min(1).max(256),
  value: z.string().min(1).max(1024),
  inline: z.boolean().optional(),
});
const embed = z
  .strictObject({
    title: z.string().max(256).optional(),
    description: z.string().max(4096).optional(),
    color: z.number().int().min(0).max(0xffffff).optional(),
    fields: z.array(embedField).max(25).optional(),
    footer: z.strictObject({ text: z.string().max(2048) }).optional(),
  })
  .refine(
    (e) =>
      (e.title ?? '').length +
        (e.description ?? '').length +
        (e.footer?.text ?? '').length +
        (e.fields ?? []).reduce((n, f) => n + f.name.length + f.value.length, 0) <=
      6000,
    'embed over 6000 characters in total',
  );
const discordButton = z.strictObject({
  type: z.literal(2),
  style: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]),
  label: z.string().min(1).max(80),
  custom_id: z.string().min(1).max(100),
  disabled: z.boolean().optional(),
});
const actionRow = z.strictObject({ type: z.literal(1), components: z.array(discordButton).min(1).max(5) });

/** A message create/edit body as the renderer makes it. */
export const discordMessageSchema = z
  .strictObject({
    content: z.string().max(2000).optional(),
    embeds: z.array(embed).max(10),
    components: z.array(actionRow).max(5),
    allowed_mentions: z.strictObject({ parse: z.array(z.enum(['users', 'roles', 'everyone'])) }),
    /** discord.js's option name for the same thing (not part of the REST body). */
    allowedMentions: z.strictObject({ parse: z.array(z.enum(['users', 'roles', 'everyone'])) }).optional(),
  })
  .superRefine((msg, ctx) => {
    const ids = new Set<string>();
    for (const row of msg.components) {
      for (const b of row.components) {
        if (ids.has(b.custom_id))
          ctx.addIssue({ code: 'custom', message: `duplicate custom_id ${b.custom_id}` });
        ids.add(b.custom_id);
      }
    }
    if (msg.content === undefined && msg.embeds.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'message needs content or an embed' });
    }
  });

/** Throws a readable error listing every rule the value breaks. */
export function assertValid<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    throw new Error(`${what} breaks the platform rules:\n${issues}`);
  }
  return r.data;
}
