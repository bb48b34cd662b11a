/**
 * The slice of the documented Discord protocol (API v10) that the fake Discord implements: gateway
 * opcodes and close codes, interaction and callback types, JSON error codes, and zod schemas of the
 * bodies a bot sends (identify, resume, interaction callbacks, messages, application commands). The
 * limits (2000-char content, 100-char custom ids, 5 rows of 5 buttons, embed sizes, 25 choices) are
 * Discord's documented ones, so a body the real API would reject is rejected here too.
 */
import { z } from 'zod';

/** Gateway opcodes (docs: topics/opcodes-and-status-codes#gateway-gateway-opcodes). */
export const Op = {
  dispatch: 0,
  heartbeat: 1,
  identify: 2,
  presenceUpdate: 3,
  voiceStateUpdate: 4,
  resume: 6,
  reconnect: 7,
  requestGuildMembers: 8,
  invalidSession: 9,
  hello: 10,
  heartbeatAck: 11,
} as const;

/** Gateway close codes the fake uses (docs: gateway close event codes). */
export const CloseCode = {
  unknownError: 4000,
  unknownOpcode: 4001,
  decodeError: 4002,
  notAuthenticated: 4003,
  authenticationFailed: 4004,
  alreadyAuthenticated: 4005,
  invalidSeq: 4007,
  rateLimited: 4008,
  sessionTimedOut: 4009,
  invalidShard: 4010,
  shardingRequired: 4011,
  invalidApiVersion: 4012,
  invalidIntents: 4013,
  disallowedIntents: 4014,
} as const;

/** Gateway intents bits the fake looks at. */
export const Intent = {
  guilds: 1 << 0,
  guildMessages: 1 << 9,
  messageContent: 1 << 15,
} as const;

/** Privileged intents: refused with 4014 unless enabled for the application. */
export const PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | Intent.messageContent;

export const InteractionType = {
  ping: 1,
  applicationCommand: 2,
  messageComponent: 3,
  autocomplete: 4,
  modalSubmit: 5,
} as const;

export const CallbackType = {
  pong: 1,
  channelMessageWithSource: 4,
  deferredChannelMessageWithSource: 5,
  deferredUpdateMessage: 6,
  updateMessage: 7,
  autocompleteResult: 8,
  modal: 9,
} as const;

export const ComponentType = { actionRow: 1, button: 2, stringSelect: 3 } as const;

/** Channel types used by the fake (Discord's `channel.type` values). */
export const ChannelType = { guildText: 0, publicThread: 11 } as const;

/** Message flags: EPHEMERAL = 1 << 6, LOADING (deferred placeholder) = 1 << 7. */
export const MessageFlag = { ephemeral: 1 << 6, loading: 1 << 7 } as const;

/** JSON error codes (docs: topics/opcodes-and-status-codes#json). */
export const ErrorCode = {
  general: 0,
  unknownChannel: 10003,
  unknownGuild: 10004,
  unknownMessage: 10008,
  unknownWebhook: 10015,
  unknownInteraction: 10062,
  unauthorized: 40001,
  alreadyAcknowledged: 40060,
  cannotEditOthersMessage: 50005,
  invalidWebhookToken: 50027,
  invalidFormBody: 50035,
} as const;

const snowflake = z.string().regex(/^\d{1,20}$/, 'expected a snowflake');

export const identifySchema = z.object({
  token: z.string(),
  properties: z.object({ os: z.string(), browser: z.string(), device: z.string() }),
  intents: z.number().int().nonnegative(),
  compress: z.boolean().optional(),
  large_threshold: z.number().int().min(50).max(250).optional(),
  shard: z.tuple([z.number().int().nonnegative(), z.number().int().positive()]).optional(),
  presence: z.unknown().optional(),
});
export type Identify = z.infer<typeof identifySchema>;

export const resumeSchema = z.object({
  token: z.string(),
  session_id: z.string(),
  seq: z.number().int().nullable(),
});

/**
 * Query of `GET /channels/{channel.id}/messages` (docs: resources/message#get-channel-messages):
 * `around`, `before` and `after` are message ids (any snowflake; one may be made from a timestamp)
 * and mutually exclusive; `limit` is 1-100, default 50.
 */
export const channelMessagesQuerySchema = z
  .object({
    around: snowflake.optional(),
    before: snowflake.optional(),
    after: snowflake.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
  })
  .refine((q) => [q.around, q.before, q.after].filter((x) => x !== undefined).length <= 1, {
    message: 'before, after and around are mutually exclusive',
  });
export type ChannelMessagesQuery = z.infer<typeof channelMessagesQuerySchema>;

export const gatewayPayloadSchema = z.object({
  op: z.number().int(),
  d: z.unknown(),
  s: z.number().int().nullable().optional(),
  t: z.string().nullable().optional(),
});

const buttonSchema = z
  .object({
    type: z.literal(ComponentType.button),
    style: z.number().int().min(1).max(6),
    label: z.string().max(80).optional(),
    custom_id: z.string().min(1).max(100).optional(),
    url: z.string().url().optional(),
    disabled: z.boolean().optional(),
    emoji: z.unknown().optional(),
  })
  .refine((b) => (b.style === 5 ? b.url !== undefined : b.custom_id !== undefined), {
    message: 'a link button needs url; every other button needs custom_id',
  });

const selectSchema = z.object({
  type: z.literal(ComponentType.stringSelect),
  custom_id: z.string().min(1).max(100),
  options: z
    .array(
      z.object({
        label: z.string().min(1).max(100),
        value: z.string().min(1).max(100),
        description: z.string().max(100).optional(),
        default: z.boolean().optional(),
      }),
    )
    .min(1)
    .max(25),
  placeholder: z.string().max(150).optional(),
  min_values: z.number().int().optional(),
  max_values: z.number().int().optional(),
  disabled: z.boolean().optional(),
});

const actionRowSchema = z
  .object({
    type: z.literal(ComponentType.actionRow),
    components: z
      .array(z.union([buttonSchema, selectSchema]))
      .min(1)
      .max(5),
  })
  .refine(
    (row) =>
      !row.components.some((c) => c.type === ComponentType.stringSelect) || row.components.length === 1,
    { message: 'a select menu must be alone in its action row' },
  );

const embedSchema = z.object({
  title: z.string().max(256).optional(),
  description: z.string().max(4096).optional(),
  url: z.string().optional(),
  color: z.number().int().optional(),
  timestamp: z.string().optional(),
  footer: z.object({ text: z.string().max(2048), icon_url: z.string().optional() }).optional(),
  author: z
    .object({ name: z.string().max(256) })
    .loose()
    .optional(),
  fields: z
    .array(
      z.object({
        name: z.string().min(1).max(256),
        value: z.string().min(1).max(1024),
        inline: z.boolean().optional(),
      }),
    )
    .max(25)
    .optional(),
});
export type Embed = z.infer<typeof embedSchema>;

function embedChars(e: Embed): number {
  return (
    (e.title?.length ?? 0) +
    (e.description?.length ?? 0) +
    (e.footer?.text.length ?? 0) +
    (e.author?.name.length ?? 0) +
    (e.fields ?? []).reduce((n, f) => n + f.name.length + f.value.length, 0)
  );
}

/** Body of a message create/edit (channel message, webhook, interaction response data). */
export const messageBodySchema = z
  .object({
    content: z.string().max(2000).nullable().optional(),
    embeds: z.array(embedSchema).max(10).nullable().optional(),
    components: z.array(actionRowSchema).max(5).nullable().optional(),
    flags: z.number().int().nullable().optional(),
    tts: z.boolean().optional(),
    // Discord (Create Message): "nonce: integer or string … (up to 25 characters)".
    nonce: z
      .union([z.string(), z.number().int()])
      .refine((n) => String(n).length <= 25, 'Must be 25 or fewer in length.')
      .optional(),
    enforce_nonce: z.boolean().optional(),
    allowed_mentions: z.unknown().optional(),
    message_reference: z.unknown().optional(),
    attachments: z.array(z.unknown()).optional(),
    sticker_ids: z.array(z.string()).optional(),
    poll: z.unknown().optional(),
  })
  .refine((m) => (m.embeds ?? []).reduce((n, e) => n + embedChars(e), 0) <= 6000, {
    message: 'embeds exceed 6000 characters in total',
    path: ['embeds'],
  })
  .refine(
    (m) => {
      const ids = (m.components ?? []).flatMap((r) =>
        r.components.flatMap((c) => ('custom_id' in c && c.custom_id !== undefined ? [c.custom_id] : [])),
      );
      return new Set(ids).size === ids.length;
    },
    { message: 'custom_id values must be unique within a message', path: ['components'] },
  );
export type MessageBody = z.infer<typeof messageBodySchema>;

const choiceSchema = z.object({
  name: z.string().min(1).max(100),
  value: z.union([z.string().max(100), z.number()]),
});

/** POST /interactions/{id}/{token}/callback */
export const callbackSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal(CallbackType.pong) }),
  z.object({ type: z.literal(CallbackType.channelMessageWithSource), data: messageBodySchema }),
  z.object({
    type: z.literal(CallbackType.deferredChannelMessageWithSource),
    data: z.object({ flags: z.number().int().optional() }).optional(),
  }),
  z.object({ type: z.literal(CallbackType.deferredUpdateMessage), data: z.unknown().optional() }),
  z.object({ type: z.literal(CallbackType.updateMessage), data: messageBodySchema }),
  z.object({
    type: z.literal(CallbackType.autocompleteResult),
    data: z.object({ choices: z.array(choiceSchema).max(25) }),
  }),
  z.object({
    type: z.literal(CallbackType.modal),
    data: z.object({
      custom_id: z.string().max(100),
      title: z.string().max(45),
      components: z.array(z.unknown()),
    }),
  }),
]);
export type Callback = z.infer<typeof callbackSchema>;

const commandName = z
  .string()
  .regex(/^[-_\p{L}\p{N}]{1,32}$/u, 'expected 1-32 characters: lowercase letters, digits, - or _')
  .refine((n) => n === n.toLowerCase(), 'expected lowercase');

interface CommandOptionInput {
  type: number;
  name: string;
  description: string;
  required?: boolean | undefined;
  autocomplete?: boolean | undefined;
  choices?: { name: string; value: string | number }[] | undefined;
  options?: CommandOptionInput[] | undefined;
}

const commandOptionSchema: z.ZodType<CommandOptionInput> = z.lazy(() =>
  z
    .object({
      type: z.number().int().min(1).max(11),
      name: commandName,
      description: z.string().min(1).max(100),
      required: z.boolean().optional(),
      autocomplete: z.boolean().optional(),
      choices: z.array(choiceSchema).max(25).optional(),
      options: z.array(commandOptionSchema).max(25).optional(),
    })
    .refine((o) => !(o.autocomplete === true && o.choices !== undefined && o.choices.length > 0), {
      message: 'autocomplete may not be set on an option with choices',
    }),
);

/** One entry of PUT /applications/{id}/commands (bulk overwrite). */
export const commandSchema = z
  .object({
    name: commandName,
    description: z.string().max(100).default(''),
    type: z.number().int().min(1).max(4).default(1),
    options: z.array(commandOptionSchema).max(25).optional(),
    default_member_permissions: z.string().nullable().optional(),
    dm_permission: z.boolean().nullable().optional(),
    contexts: z.array(z.number().int()).nullable().optional(),
    integration_types: z.array(z.number().int()).optional(),
    nsfw: z.boolean().optional(),
  })
  .refine((c) => c.type !== 1 || c.description.length >= 1, {
    message: 'a chat input command needs a description of 1-100 characters',
    path: ['description'],
  })
  .refine(
    (c) => {
      const opts = c.options ?? [];
      const firstOptional = opts.findIndex((o) => o.required !== true);
      return firstOptional === -1 || opts.slice(firstOptional).every((o) => o.required !== true);
    },
    { message: 'required options must be listed before optional ones', path: ['options'] },
  );
export type CommandInput = z.infer<typeof commandSchema>;

export const bulkCommandsSchema = z.array(commandSchema).max(100);

export { snowflake };
