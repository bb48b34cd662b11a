/**
 * A fault as a view, for every surface: what failed, in words for what an on-call person can do about
 * it (Redis or the deploy platform unreachable, slow, or answering an error), the stable code, and that
 * nothing was half-done. "Nothing was switched" holds because a click whose switch was queued never
 * ends in a fault: Flow answers it as queued whatever fails after the enqueue (see `Flow.enqueueFrom`,
 * docs/jobs.md "When Redis is unreachable").
 */
import type { CommandName } from '../chat.js';
import { asSwitchyardError, type ErrorCode } from '../errors.js';
import { type Logger, maskCredentials } from '../log.js';
import type { MessageView } from './types.js';

/** What a fault code means to the person who met it; codes not listed are said by their code alone. */
const REASONS: Partial<Record<ErrorCode, string>> = {
  redis_unavailable: 'its Redis is unreachable',
  platform_unavailable: 'the deploy platform could not be reached',
  platform_timeout: 'the deploy platform did not answer in time',
  platform_http: 'the deploy platform answered with an error',
};

/** Why `e` happened, for a sentence: the reason's words and the code, or the code alone. */
export function faultReason(e: unknown): string {
  const err = asSwitchyardError(e);
  if (err.code === 'redis_unavailable') return REASONS.redis_unavailable ?? err.code;
  const words = REASONS[err.code];
  return words === undefined ? err.code : `${words}: ${err.code}`;
}

/**
 * `switches`: whether what failed could have switched traffic (a rollback, a promote, a click). A read
 * (`/deployments`) says only where the error is: "Nothing was switched" would be true but odd there.
 */
export function faultView(e: unknown, doing: string, { switches = true } = {}): MessageView {
  const err = asSwitchyardError(e);
  const after = 'The error is in the Switchyard logs.';
  const retry = err.retry ? ' It may work if you try again in a moment.' : '';
  const summary = `Switchyard could not ${doing} (${faultReason(err)}).${retry}`;
  return {
    kind: 'refusal',
    tone: 'danger',
    title: 'Something went wrong',
    summary,
    blocks: [
      { type: 'text', spans: [{ text: summary }] },
      {
        type: 'context',
        spans: [{ text: switches ? `Nothing was switched by this request. ${after}` : after }],
      },
    ],
    buttons: [],
    ephemeral: true,
  };
}

/** The fault view of a slash command (as typed on the console: any word): `/deployments` only reads. */
export function commandFaultView(e: unknown, name: CommandName | string): MessageView {
  return faultView(e, `run /${name}`, { switches: name !== 'deployments' });
}

/**
 * Logs a command's fault: the deploy platform unreachable, slow or answering an error is an outage of
 * the platform, said as a WARN line with its code and message (each command meeting it says it again,
 * without a stack trace); anything else is an ERROR with the error, to be looked into.
 */
export function logCommandFault(
  logger: Logger | undefined,
  e: unknown,
  fields: Record<string, unknown>,
  message: string,
): void {
  const err = asSwitchyardError(e);
  if (err.code.startsWith('platform_'))
    // The platform's message may quote a URL or a token (`err` would be made safe by the serializer).
    logger?.warn(
      { ...fields, code: err.code, reason: maskCredentials(err.message) },
      `${message}: ${faultReason(err)}`,
    );
  else logger?.error({ ...fields, err: e }, message);
}
