/**
 * `POST /webhooks/alerts/:source` on the shared HttpServer: authenticate, read a bounded body, parse it
 * with the source's zod parser and hand the alerts to the AlertService. Thin by design (STYLE 7).
 *
 * Answers: 202 with a JSON summary (alerts received, environment and outcome per alert, and what the
 * delivery carried that is not acted on, with outcome `ignored` and why); 400 naming the
 * invalid field; 401 for a missing/bad bearer or vendor signature (before the body is read, unless
 * the request carries the signature of a vendor whose secret is set); 403 for a non-loopback peer (or
 * a request a proxy forwarded) while `ALERT_WEBHOOK_SECRET` is unset; 404 listing the valid sources;
 * 413 over `alerts.maxBodyBytes`; 415 for a body declared as something other than JSON; 503
 * when handling failed (Redis or the platform unreachable) or a suggestion could not be posted or
 * edited in chat (outcome `failed`), so the sender retries: a sender takes any 2xx as delivered, and
 * those that retry (Alertmanager, Datadog, …) do so on a 5xx. Retrying is safe: a failed post gives
 * its incident up (unless it may have gone through: then the incident stays claimed, answered
 * `retry: false`) and a failed resolved edit is left to the retry, while what did go out
 * deduplicates. The answer goes out within the time the sender waits for it (`ANSWER_BUDGET_MS`): what
 * is still being handled then is answered `pending` and finished in the background
 * (`AlertService.handleWebhook`), which retries it itself only when this answer is a 2xx (a 503 is
 * the sender's to retry). Nothing a sender can put in a request makes the handler throw.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseAlertDelivery } from '../../src/alerts/parsers.js';
import {
  verifyBearer,
  verifyPagerDutySignature,
  verifySentrySignature,
} from '../../src/alerts/signatures.js';
import {
  ALERT_SOURCES,
  type AlertIntake,
  AlertOutcome,
  type AlertSource,
  isAlertSource,
} from '../../src/alerts/types.js';
import { type Clock, systemClock } from '../../src/clock.js';
import type { Config } from '../../src/config.js';
import { asSwitchyardError, redisUnavailable } from '../../src/errors.js';
import {
  BodyTooLargeError,
  crossSiteReason,
  forwardingHeader,
  type HttpServer,
  isLoopbackAddress,
  isLoopbackHostHeader,
  readBody,
  sendJson,
} from '../../src/http.js';
import { type Logger, silentLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import { faultReason, logCommandFault } from '../../src/views/fault.js';

export const ALERT_WEBHOOK_PATH = '/webhooks/alerts/:source';

export interface AlertWebhookOptions {
  readonly intake: AlertIntake;
  readonly config: Pick<Config, 'env' | 'file'>;
  readonly metrics?: Metrics;
  readonly log?: Logger;
  readonly clock?: Clock;
  /**
   * The peer address of a request. Defaults to the TCP socket's remote address (proxy headers such as
   * X-Forwarded-For are never trusted). Tests pass a function returning a non-loopback address to
   * exercise the loopback rule without binding a public interface.
   */
  readonly peerAddress?: (req: IncomingMessage) => string | undefined;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x.x.x. */
export const isLoopback = isLoopbackAddress;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function vendorSecret(source: AlertSource, file: Config['file']): string | undefined {
  if (source === 'sentry') return file.alerts.sentrySecret;
  if (source === 'pagerduty') return file.alerts.pagerdutySecret;
  return undefined;
}

/** The header a signing vendor (Sentry, PagerDuty) sends its body's signature in, as its docs name it. */
function signatureHeader(source: AlertSource): string {
  return source === 'sentry' ? 'Sentry-Hook-Signature' : 'X-PagerDuty-Signature';
}

/**
 * The Content-Type of a body declared as something other than JSON (clipped), or undefined. Every
 * supported vendor (Alertmanager, Grafana, Datadog, Sentry, PagerDuty) sends `application/json`, and
 * `+json` types are JSON too. A body declared as nothing is read as JSON: a hand-written request (a
 * script, a test) may well declare none.
 */
function notJson(req: IncomingMessage): string | undefined {
  const declared = header(req, 'content-type');
  if (declared === undefined || declared.trim() === '') return undefined;
  const type = declared.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json' || /^[a-z0-9!#$&^_.-]+\/[a-z0-9!#$&^_.+-]+\+json$/.test(type))
    return undefined;
  return declared.slice(0, 100);
}

function signatureValid(source: AlertSource, req: IncomingMessage, body: Buffer, secret: string): boolean {
  if (source === 'sentry') return verifySentrySignature(body, header(req, 'sentry-hook-signature'), secret);
  if (source === 'pagerduty')
    return verifyPagerDutySignature(body, header(req, 'x-pagerduty-signature'), secret);
  return false;
}

/** Registers the alert webhook route on the shared HTTP server. */
export function registerAlertWebhooks(http: HttpServer, opts: AlertWebhookOptions): void {
  const log = opts.log ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const peer = opts.peerAddress ?? ((req: IncomingMessage) => req.socket.remoteAddress);
  const count = (source: string, outcome: string, n = 1) => {
    if (n > 0) opts.metrics?.alerts.inc({ source, outcome }, n);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => {
    const source = (params.source ?? '').toLowerCase();
    const globalSecret = opts.config.env.ALERT_WEBHOOK_SECRET;
    /** Refuses the request (403) before reading it, counted under its source when it names one. */
    const forbid = (message: string) => {
      req.resume();
      count(isAlertSource(source) ? source : 'unknown', 'forbidden');
      sendJson(res, 403, { error: 'forbidden', message });
    };
    // Alert senders are servers; a browser's request here is a web page posting on someone's behalf.
    const fromPage = crossSiteReason(req);
    if (fromPage !== undefined) {
      forbid(`Alert webhooks are not accepted from web pages (${fromPage}).`);
      return;
    }
    // Trusting loopback callers also means checking the name they used: a web page can point a name of
    // its own at 127.0.0.1 (DNS rebinding).
    if (!globalSecret && !isLoopbackHostHeader(req.headers.host)) {
      forbid(
        'Alert webhooks without ALERT_WEBHOOK_SECRET are accepted for a loopback address only (Host: 127.0.0.1 or localhost). Set it and send "Authorization: Bearer <secret>".',
      );
      return;
    }
    // A reverse proxy on this machine connects from loopback with a loopback Host: what it forwards
    // comes from anywhere that reaches the proxy, so it is trusted only with the secret.
    const forwarded = globalSecret ? undefined : forwardingHeader(req);
    if (forwarded !== undefined) {
      forbid(
        `Alert webhooks that came through a proxy (${forwarded}) need ALERT_WEBHOOK_SECRET: set it and send "Authorization: Bearer <secret>".`,
      );
      return;
    }
    if (!globalSecret && !isLoopback(peer(req))) {
      forbid(
        'Alert webhooks are accepted from loopback only while ALERT_WEBHOOK_SECRET is unset. Set it and send "Authorization: Bearer <secret>".',
      );
      return;
    }
    if (!isAlertSource(source)) {
      req.resume();
      sendJson(res, 404, {
        error: 'unknown_source',
        message: `Unknown alert source "${source.slice(0, 64)}". Valid sources: ${ALERT_SOURCES.join(', ')}.`,
        valid: ALERT_SOURCES,
      });
      return;
    }
    // Who sent it is decided before the body is read wherever the headers suffice: a stranger's request
    // is refused at once, its body unread, instead of each holding up to alerts.maxBodyBytes in memory
    // first. Only a request its vendor may have signed (a vendor secret set for its source and the
    // signature header there) has its body read before the decision: the signature covers the body.
    const secret = vendorSecret(source, opts.config.file);
    const bearer = globalSecret !== undefined && verifyBearer(header(req, 'authorization'), globalSecret);
    const maySign =
      secret !== undefined && (header(req, signatureHeader(source).toLowerCase()) ?? '').trim() !== '';
    /** 401 for a missing or bad token or signature; `unread`: the body was not read, the connection ends. */
    const unauthorized = (unread: boolean) => {
      count(source, 'unauthorized');
      const close: Record<string, string> = unread ? { connection: 'close' } : {};
      if (globalSecret)
        sendJson(
          res,
          401,
          {
            error: 'unauthorized',
            message: `Send "Authorization: Bearer <ALERT_WEBHOOK_SECRET>"${secret ? ' or a valid vendor signature' : ''}.`,
          },
          { 'www-authenticate': 'Bearer', ...close },
        );
      else
        sendJson(
          res,
          401,
          {
            error: 'bad_signature',
            message: `${signatureHeader(source)} is missing or does not match the body.`,
          },
          close,
        );
    };
    if ((globalSecret !== undefined || secret !== undefined) && !bearer && !maySign) {
      unauthorized(true);
      return;
    }
    const declared = notJson(req);
    if (declared !== undefined) {
      count(source, 'invalid');
      sendJson(
        res,
        415,
        {
          error: 'unsupported_media_type',
          message: `Content-Type "${declared}" is not JSON: send the alerts as JSON, with "Content-Type: application/json".`,
        },
        { connection: 'close' },
      );
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req, opts.config.file.alerts.maxBodyBytes);
    } catch (e) {
      if (e instanceof BodyTooLargeError) {
        count(source, 'too_large');
        sendJson(
          res,
          413,
          { error: 'payload_too_large', message: `Body larger than ${e.limit} bytes (alerts.maxBodyBytes).` },
          { connection: 'close' },
        );
      } else if (!res.headersSent) {
        sendJson(res, 400, { error: 'bad_request', message: 'Could not read the request body.' });
      }
      return;
    }
    if (!bearer && secret !== undefined && !signatureValid(source, req, body, secret)) {
      unauthorized(false);
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      count(source, 'invalid');
      sendJson(res, 400, {
        error: 'invalid_json',
        message: `(root): expected a JSON body (${(e as Error).message.slice(0, 120)})`,
      });
      return;
    }
    const parsed = parseAlertDelivery(source, json, {
      now: clock.now(),
      ...(source === 'sentry' ? { sentryResource: header(req, 'sentry-hook-resource') } : {}),
    });
    if (!parsed.ok) {
      count(source, 'invalid');
      sendJson(res, 400, { error: 'invalid_payload', message: parsed.refusal.message });
      return;
    }
    const { alerts, ignored } = parsed.value;
    try {
      // Answered within the sender's time: what is still being handled then goes on in the background.
      const results = await (opts.intake.handleWebhook
        ? opts.intake.handleWebhook(source, alerts)
        : opts.intake.handle(alerts));
      // What the delivery carried and Switchyard does not act on is accepted too, with the reason.
      count(source, AlertOutcome.ignored, ignored.length);
      const skipped = ignored.map(({ detail, ...item }) => ({
        ...item,
        outcome: AlertOutcome.ignored,
        detail,
      }));
      const summary = {
        source,
        received: alerts.length,
        environments: [...new Set(results.flatMap((r) => (r.environment ? [r.environment] : [])))],
        alerts: [...results, ...skipped],
      };
      // Only failures a retry may fix ask the sender to retry; a chat refusal for good (the bot is not
      // in the channel) is reported in the 202's results, or the sender would retry it forever. The
      // service judges an answer the same way (`retryable`): a 503 here is never retried by it too.
      const failed = results.filter((r) => r.outcome === AlertOutcome.failed && r.retry !== false);
      if (failed.length > 0) {
        // A 2xx would tell the sender the alert was delivered: it would never send it again.
        const first = failed[0]?.detail ?? 'the chat API did not answer';
        sendJson(res, 503, {
          error: 'chat_post_failed',
          message: `Posting to chat failed for ${failed.length} of ${results.length} alert${results.length === 1 ? '' : 's'} (${first}); retry later.`,
          ...summary,
        });
        return;
      }
      sendJson(res, 202, summary);
    } catch (e) {
      // Not counted here: the intake counted every alert of the delivery once (AlertService.handle: those
      // it handled with their outcome, the one that threw and those after it as failed).
      const unreachable = redisUnavailable(e);
      if (unreachable) {
        log.warn({ source, reason: (e as Error).message }, `alert webhook: ${unreachable.message}`);
        sendJson(res, 503, {
          error: 'redis_unavailable',
          message: `${unreachable.message}, so the alerts could not be handled; retry later.`,
        });
        return;
      }
      // The deploy platform unreachable, slow or answering an error: said in words (a WARN line, no
      // stack); anything else is an ERROR to look into. Either way the sender retries.
      logCommandFault(log, e, { source }, 'alert webhook: handling failed');
      const platform = asSwitchyardError(e).code.startsWith('platform_');
      sendJson(res, 503, {
        error: 'unavailable',
        message: platform
          ? `Could not handle the alerts now (${faultReason(e)}); retry later.`
          : 'Could not handle the alerts now; retry later.',
      });
    }
  };

  http.route('POST', ALERT_WEBHOOK_PATH, async (req, res, params) => {
    try {
      await handle(req, res, params);
    } catch (e) {
      // Last line of defence: the route never lets an exception reach the server.
      log.error({ err: e }, 'alert webhook: unexpected error');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal_error', message: 'internal error' });
      else res.end();
    }
  });
}
