/**
 * Sends what Slack itself sends to an app's request URL, correctly signed: slash commands
 * (form-encoded, the documented fields) and `block_actions` interactivity payloads (`payload=` JSON
 * in a form body). The signature is Slack's v0 scheme: `X-Slack-Signature: v0=` + hex HMAC-SHA256 of
 * `v0:{timestamp}:{raw body}` with the signing secret, and `X-Slack-Request-Timestamp` in seconds.
 * Response URLs are minted on the fake Slack so replies through them are recorded. Messages posted in
 * a channel go out as Slack's Events API delivers them (`message`): see `message`.
 */
import { createHmac } from 'node:crypto';
import { type Agent, request } from 'node:http';
import type { FakeSlack, MessageDelivery } from './server.js';

/** What the app answered. */
export interface SlackHttpResult {
  readonly status: number;
  readonly text: string;
  /** Parsed JSON body when the answer was JSON (an ack with a message), else undefined. */
  readonly json: Record<string, unknown> | undefined;
  /** Wall-clock ms from sending to the full response. */
  readonly ms: number;
}

/** What `SlackRequests.message` did: Slack delivers a message only to an app subscribed to its event. */
export type MessageDeliveryResult =
  | (MessageDelivery & { readonly delivered: false })
  | (MessageDelivery & SlackHttpResult & { readonly delivered: true });

export interface SignOptions {
  /** Unix seconds to put in the header and the signature (default: now). */
  readonly timestamp?: number;
  /** Sign with this secret instead of the right one (forgery). */
  readonly secret?: string;
  /** Extra headers, such as `X-Slack-Retry-Num`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** HTTP agent (keep-alive pools in benchmarks). */
  readonly agent?: Agent;
}

export interface SlashCommandInput {
  readonly command: string;
  readonly text?: string;
  readonly userId?: string;
  readonly userName?: string;
  readonly channelId?: string;
  readonly channelName?: string;
}

export interface BlockActionInput {
  readonly actionId: string;
  readonly value?: string;
  readonly blockId?: string;
  readonly userId?: string;
  readonly userName?: string;
  readonly channelId?: string;
  /** ts of the message the button is on. */
  readonly messageTs: string;
  /** The message's blocks as Slack would echo them back. */
  readonly messageBlocks?: readonly unknown[];
  readonly messageText?: string;
}

/** Computes Slack's v0 request signature. */
export function slackSignature(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/** Posts a raw body with a Slack signature to `url`. */
export function postSigned(
  url: string,
  secret: string,
  body: string,
  contentType: string,
  opts: SignOptions = {},
): Promise<SlackHttpResult> {
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = slackSignature(opts.secret ?? secret, timestamp, body);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ...(opts.agent === undefined ? {} : { agent: opts.agent }),
        headers: {
          'content-type': contentType,
          'content-length': Buffer.byteLength(body),
          'x-slack-signature': signature,
          'x-slack-request-timestamp': String(timestamp),
          'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | undefined;
          if (String(res.headers['content-type'] ?? '').includes('json') && text !== '') {
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              json = undefined;
            }
          }
          resolve({ status: res.statusCode ?? 0, text, json, ms: performance.now() - started });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends signed Slack requests to one app endpoint (`http://127.0.0.1:PORT/slack/events`). */
export class SlackRequests {
  private triggerCounter = 0;

  constructor(
    readonly url: string,
    readonly signingSecret: string,
    readonly slack: FakeSlack,
  ) {}

  /** The fields Slack sends for a slash command (form fields over HTTP, a JSON payload over Socket Mode). */
  slashCommandPayload(input: SlashCommandInput): { payload: Record<string, string>; responseUrl: string } {
    const channelId = input.channelId ?? 'C0PROD';
    const userId = input.userId ?? 'U0ALICE';
    const responseUrl = this.slack.createResponseUrl({ channel: channelId, user: userId });
    this.triggerCounter += 1;
    const payload = {
      token: 'deprecated-verification-token',
      team_id: this.slack.teamId,
      team_domain: 'fake',
      channel_id: channelId,
      channel_name: input.channelName ?? this.slack.channels.get(channelId) ?? 'incidents',
      user_id: userId,
      user_name: input.userName ?? userId.toLowerCase(),
      command: input.command,
      text: input.text ?? '',
      api_app_id: 'A0SWITCH',
      is_enterprise_install: 'false',
      response_url: responseUrl,
      trigger_id: `${this.triggerCounter}.1.fake`,
    };
    return { payload, responseUrl };
  }

  /** The form body Slack posts for a slash command; also returns the response URL it minted. */
  slashCommandBody(input: SlashCommandInput): { body: string; responseUrl: string } {
    const { payload, responseUrl } = this.slashCommandPayload(input);
    return { body: new URLSearchParams(payload).toString(), responseUrl };
  }

  /** Sends a signed slash command. */
  async command(
    input: SlashCommandInput,
    opts: SignOptions = {},
  ): Promise<SlackHttpResult & { responseUrl: string }> {
    const { body, responseUrl } = this.slashCommandBody(input);
    const result = await postSigned(
      this.url,
      this.signingSecret,
      body,
      'application/x-www-form-urlencoded',
      opts,
    );
    return { ...result, responseUrl };
  }

  /** The form body (`payload=` JSON) Slack posts when a button on a message is clicked. */
  blockActionBody(input: BlockActionInput): { body: string; responseUrl: string } {
    const { payload, responseUrl } = this.blockActionPayload(input);
    return { body: new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), responseUrl };
  }

  /** The `block_actions` payload of a click on a message button. */
  blockActionPayload(input: BlockActionInput): { payload: Record<string, unknown>; responseUrl: string } {
    const channelId = input.channelId ?? 'C0PROD';
    const userId = input.userId ?? 'U0ALICE';
    const responseUrl = this.slack.createResponseUrl({
      channel: channelId,
      user: userId,
      messageTs: input.messageTs,
    });
    this.triggerCounter += 1;
    const stored = this.slack.message(channelId, input.messageTs);
    const payload = {
      type: 'block_actions',
      user: {
        id: userId,
        username: input.userName ?? userId.toLowerCase(),
        name: input.userName ?? userId.toLowerCase(),
        team_id: this.slack.teamId,
      },
      api_app_id: 'A0SWITCH',
      token: 'deprecated-verification-token',
      container: { type: 'message', message_ts: input.messageTs, channel_id: channelId, is_ephemeral: false },
      trigger_id: `${this.triggerCounter}.2.fake`,
      team: { id: this.slack.teamId, domain: 'fake' },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: channelId, name: this.slack.channels.get(channelId) ?? 'incidents' },
      message: {
        type: 'message',
        user: this.slack.botUserId,
        bot_id: this.slack.botId,
        ts: input.messageTs,
        text: input.messageText ?? stored?.text ?? '',
        blocks: input.messageBlocks ?? stored?.blocks ?? [],
      },
      state: { values: {} },
      response_url: responseUrl,
      actions: [
        {
          type: 'button',
          action_id: input.actionId,
          block_id: input.blockId ?? 'actions',
          text: { type: 'plain_text', text: 'button', emoji: true },
          ...(input.value === undefined ? {} : { value: input.value }),
          action_ts: `${Math.floor(Date.now() / 1000)}.000100`,
        },
      ],
    };
    return { payload, responseUrl };
  }

  /** Sends a signed button click. */
  async click(
    input: BlockActionInput,
    opts: SignOptions = {},
  ): Promise<SlackHttpResult & { responseUrl: string }> {
    const { body, responseUrl } = this.blockActionBody(input);
    const result = await postSigned(
      this.url,
      this.signingSecret,
      body,
      'application/x-www-form-urlencoded',
      opts,
    );
    return { ...result, responseUrl };
  }

  /**
   * A message posted in a channel the bot is in, as Slack's Events API delivers it: a `message` event
   * with `channel_type` `channel` (subscription `message.channels`) or, in a private channel, `group`
   * (subscription `message.groups`), `event_ts` equal to its `ts`. When the app does not subscribe to
   * that event (`FakeSlack.botEvents`), Slack sends nothing: `delivered: false`.
   */
  async message(
    fields: { readonly channel: string; readonly ts: string } & Record<string, unknown>,
    eventId: string,
    opts: SignOptions = {},
  ): Promise<MessageDeliveryResult> {
    const delivery = this.slack.messageDelivery(fields.channel);
    if (!this.slack.botEvents.has(delivery.subscription)) return { ...delivery, delivered: false };
    const event = { type: 'message', ...fields, event_ts: fields.ts, channel_type: delivery.channelType };
    return { ...delivery, ...(await this.event(event, eventId, opts)), delivered: true };
  }

  /** Sends a signed Events API envelope (JSON). */
  event(event: Record<string, unknown>, eventId: string, opts: SignOptions = {}): Promise<SlackHttpResult> {
    const body = JSON.stringify({
      token: 'deprecated-verification-token',
      team_id: this.slack.teamId,
      api_app_id: 'A0SWITCH',
      event,
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: this.slack.teamId, user_id: this.slack.botUserId, is_bot: true }],
    });
    return postSigned(this.url, this.signingSecret, body, 'application/json', opts);
  }
}

/**
 * Finds the action buttons of a rendered message: action_id → value, so tests click what the user
 * would see rather than hand-writing ids.
 */
export function buttonsOf(
  blocks: readonly unknown[],
): { actionId: string; value: string | undefined; text: string }[] {
  const out: { actionId: string; value: string | undefined; text: string }[] = [];
  for (const block of blocks) {
    const b = block as { type?: unknown; elements?: unknown; accessory?: unknown };
    const candidates = [
      ...(b.type === 'actions' && Array.isArray(b.elements) ? b.elements : []),
      ...(b.accessory ? [b.accessory] : []),
    ];
    for (const el of candidates) {
      const e = el as { type?: unknown; action_id?: unknown; value?: unknown; text?: { text?: unknown } };
      if (e.type === 'button' && typeof e.action_id === 'string') {
        out.push({
          actionId: e.action_id,
          value: typeof e.value === 'string' ? e.value : undefined,
          text: typeof e.text?.text === 'string' ? e.text.text : '',
        });
      }
    }
  }
  return out;
}
