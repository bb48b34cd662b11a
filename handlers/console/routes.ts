/**
 * HTTP routes of the local console: the page at `/`, server-sent events at `/console/events`, and a
 * small JSON API the page calls (commands, clicks, the live platform panel, simulated pushes and
 * alerts). Every body is zod-parsed; bad input answers 400 naming the field.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { safeEqual } from '../../src/alerts/signatures.js';
import { type ChatReply, type ChatService, type ClickReply, COMMANDS, commandArgs } from '../../src/chat.js';
import { textView } from '../../src/chat-sinks.js';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import { formatIssues } from '../../src/config.js';
import { assertNever, type Deployment, type EnvironmentSnapshot } from '../../src/domain/types.js';
import { asSwitchyardError, redisUnavailable } from '../../src/errors.js';
import type { Flow } from '../../src/flow.js';
import {
  BodyTooLargeError,
  crossSiteReason,
  forwardingHeader,
  type Handler,
  type HttpServer,
  isJsonContentType,
  isLoopbackHostHeader,
  readBody,
  sendJson,
  sendText,
} from '../../src/http.js';
import type { Logger } from '../../src/log.js';
import { CommandOutcome, commandReplyOutcome, type Metrics } from '../../src/metrics.js';
import type { DeployPlatform, PlatformEvent, ProbeResult, Route } from '../../src/platform/port.js';
import type { MessageRef } from '../../src/progress.js';
import { parseAction } from '../../src/views/actions.js';
import { commandFaultView, faultReason, faultView, logCommandFault } from '../../src/views/fault.js';
import { listedDeployments } from '../../src/views/model.js';
import type { MessageView } from '../../src/views/types.js';
import { CONSOLE_CHANNEL, type ConsoleEntry, type ConsoleSurface } from './surface.js';

const userSchema = z
  .string()
  .trim()
  .min(1, 'expected your name')
  .max(40, 'expected at most 40 characters')
  .regex(/^[\p{L}\p{N} ._-]+$/u, 'expected letters, digits, spaces, ".", "_" or "-"');
const commandBody = z.object({
  user: userSchema,
  text: z.string().max(500, 'expected at most 500 characters'),
});
const actionBody = z.object({
  user: userSchema,
  actionId: z.string().min(1).max(200),
  messageId: z.string().min(1).max(64),
});
const pushBody = z.object({
  environment: z.string().min(1),
  branch: z.string().trim().min(1).max(100).optional(),
  message: z.string().max(200).optional(),
  fail: z.boolean().optional(),
  /** Who pushed: the commit's author (the console's user name). */
  user: userSchema.optional(),
});
const alertBody = z.object({ environment: z.string().min(1), title: z.string().min(1).max(200).optional() });

export interface ConsoleDeps {
  readonly surface: ConsoleSurface;
  readonly chat: ChatService;
  readonly flow: Flow;
  readonly platform: DeployPlatform;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Simulated pushes (the local platform only). */
  readonly push?: (req: {
    environment: string;
    branch?: string;
    message?: string;
    author?: string;
    fail?: boolean;
  }) => Promise<{ id: string }>;
  /**
   * When set, every console route but `/console/health` needs this token (`SWITCHYARD_CONSOLE_TOKEN`):
   * `GET /?token=…` sets a SameSite=Strict, HttpOnly cookie (a value derived from the token, never the
   * token: see `consoleSession`) and redirects to the page; API callers may send
   * `Authorization: Bearer …`. Anything else gets 401 and changes nothing.
   */
  readonly token?: string;
  /** Fires a test alert (generic source) for an environment. */
  readonly fireAlert?: (
    environment: string,
    title: string,
  ) => Promise<readonly { outcome: string; detail?: string }[]>;
}

/**
 * Reads a state-changing request's JSON body. A request a web page of another site made through the
 * operator's browser (cookies included) is refused first, and so is a body not declared as JSON: a
 * page can send a cross-site form or `text/plain` POST without asking, never an `application/json` one.
 */
async function parseBody<T>(
  req: IncomingMessage,
  res: ServerResponse,
  schema: z.ZodType<T>,
): Promise<T | undefined> {
  const fromPage = crossSiteReason(req);
  if (fromPage !== undefined) {
    req.resume();
    sendJson(res, 403, {
      error: 'forbidden',
      message: `the console does not act on requests from other sites (${fromPage})`,
    });
    return undefined;
  }
  if (!isJsonContentType(req)) {
    req.resume();
    sendJson(res, 415, {
      error: 'unsupported_media_type',
      message: 'body: expected content-type application/json',
    });
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse((await readBody(req, 32 * 1024)).toString('utf8') || '{}');
  } catch (e) {
    sendJson(res, e instanceof BodyTooLargeError ? 413 : 400, {
      error: 'invalid_body',
      message: e instanceof BodyTooLargeError ? e.message : 'body: expected JSON',
    });
    return undefined;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    sendJson(res, 400, { error: 'invalid_body', message: formatIssues(parsed.error, raw) });
    return undefined;
  }
  return parsed.data;
}

const PAGE_URL = new URL('./page.html', import.meta.url);

/** Name of the login cookie of the console. */
export const CONSOLE_COOKIE = 'sy_console';

/** What the console's session value is an HMAC of (changing it logs every browser out). */
const SESSION_LABEL = 'switchyard console session v1';

/**
 * The value of the login cookie for `token`: an HMAC-SHA256 of a fixed label keyed with the token.
 * Not the token itself: browsers send a host's cookies to every port of it, so any other service on
 * the machine (a dev server, a tunnel's dashboard) receives the cookie, and must not receive the
 * master token, which also works as a bearer token for the API. Derived, not random: it survives a
 * restart of the bot (as plans do), so a restart mid-incident logs nobody out; a new token ends every
 * session.
 */
export function consoleSession(token: string): string {
  return createHmac('sha256', token).update(SESSION_LABEL).digest('base64url');
}

/** Compares a presented secret with the expected one in constant time (any lengths). */
function sameSecret(given: string | undefined, expected: string): boolean {
  return given !== undefined && safeEqual(given, expected);
}

/**
 * Whether a request is logged in: its bearer token is the console token, or (without one) its login
 * cookie holds the session value of that token.
 */
function loggedIn(
  req: IncomingMessage,
  login: { readonly token: string; readonly session: string },
): boolean {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return sameSecret(auth.slice('Bearer '.length).trim(), login.token);
  return sameSecret(consoleCookie(req), login.session);
}

/** The value of the request's login cookie, if it has one. */
function consoleCookie(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name !== CONSOLE_COOKIE) continue;
    try {
      return decodeURIComponent(rest.join('='));
    } catch {
      return undefined; // a malformed cookie (another app's on this host) is no token
    }
  }
  return undefined;
}

/**
 * How much of one event stream may wait unsent in memory (bytes): a tab that stops reading (a
 * suspended laptop, a stalled proxy) would otherwise make the server keep every entry for it. Past
 * this the stream is cut; the page reconnects and reloads the timeline.
 */
export const MAX_STREAM_BUFFER_BYTES = 1_048_576;

const EVENT_STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
} as const;

/** The metrics label of a clicked action id: its kind when it parses, else `invalid` (bounded). */
function actionLabel(actionId: string): string {
  const parsed = parseAction(actionId);
  return parsed.ok ? parsed.value.kind : 'invalid';
}

/**
 * For chat text that reads as a command without its "/" (`rollback production`): a note for its
 * sender saying how to run it. Only for a command name and at most the two words a command takes: a
 * sentence that starts with "rollback" is chat.
 */
function slashHint(text: string): MessageView | undefined {
  const words = text.split(/\s+/);
  const name = words[0]?.toLowerCase() ?? '';
  if (words.length > 3 || !(COMMANDS as readonly string[]).includes(name)) return undefined;
  const command = [`/${name}`, ...words.slice(1)].join(' ');
  return {
    ...textView('Not run', [`Commands start with /: ${command}`]),
    ephemeral: true,
  };
}

/** How many deployments of each environment the live panel lists (the newest, plus the live one). */
const PANEL_DEPLOYMENTS = 12;

/**
 * The domains the live panel shows, and probes through the router on every refresh (every 5 s per open
 * page, and after every platform event): every live and environment domain (those are what a switch
 * moves), the branch domains of the deployments the panel lists and of the live deployment's branch,
 * and the own domain of each deployment the panel lists. Not every deployment's own domain, nor every
 * branch's: each push adds one, and each new branch another, so probing them all made a refresh cost
 * one probe per deployment and per branch ever kept (400 preview branches: 422 probes, 0.6 s, every
 * 5 s); a listed deployment's domains are the ones worth a glance (and a curl).
 */
function panelDomains(
  routes: readonly Route[],
  listed: readonly Deployment[],
  snapshot: EnvironmentSnapshot,
): Route[] {
  const ids = new Set(listed.map((d) => d.id));
  const currentId = snapshot.environment.currentDeploymentId;
  const liveBranch = snapshot.deployments.find((d) => d.id === currentId)?.branch;
  // The routes carry no branch: the snapshot's domains say which branch domain is the live branch's.
  const liveBranchHosts = new Set(
    snapshot.domains
      .filter((d) => d.stickiness === 'branch' && liveBranch !== undefined && d.branch === liveBranch)
      .map((d) => d.hostname),
  );
  return routes.filter((r) => {
    switch (r.stickiness) {
      case 'live':
      case 'environment':
        return true;
      case 'branch':
        return (r.deploymentId !== undefined && ids.has(r.deploymentId)) || liveBranchHosts.has(r.hostname);
      case 'deployment':
        return r.deploymentId !== undefined && ids.has(r.deploymentId);
      default:
        return assertNever(r.stickiness, 'domain stickiness');
    }
  });
}

/**
 * The deployments a switch is reactivating: in standby by the snapshot, yet one of the probed domains
 * was answered by it. A standby deployment has no upstream (the router answers 503 for it), and one
 * leaving standby is started before its status says ready (a rollback or promote starts it, waits the
 * reactivation time, then switches), so an answer from it means it is coming back. Without this the
 * panel said "standby" for the whole reactivation.
 */
function reactivatingIds(
  snapshot: EnvironmentSnapshot,
  probes: readonly (ProbeResult | undefined)[],
): Set<string> {
  const standby = new Set(snapshot.deployments.filter((d) => d.status === 'standby').map((d) => d.id));
  const ids = new Set<string>();
  for (const p of probes) {
    if (p?.deploymentId !== undefined && standby.has(p.deploymentId)) ids.add(p.deploymentId);
  }
  return ids;
}

/** Why a domain routed to `d` is not answered by it, in the panel's words (the router says only 503). */
type UnservedWhy = 'building' | 'build failed' | 'stopped' | 'standby' | 'reactivating';

/**
 * Why `d`, the deployment a domain routes to, did not answer its probe, from its status: a bare "503"
 * left people guessing whether a build was still running or had failed. Undefined when it answered,
 * when nothing was probed, or when its status does not explain it (a ready one: a passing fault).
 */
function unservedWhy(
  d: Deployment | undefined,
  reactivating: ReadonlySet<string>,
  probe: ProbeResult | undefined,
): UnservedWhy | undefined {
  if (d === undefined || probe === undefined || probe.deploymentId !== undefined) return undefined;
  switch (d.status) {
    case 'building':
    case 'stopped':
      return d.status;
    case 'failed':
      return 'build failed';
    case 'standby':
      return reactivating.has(d.id) ? 'reactivating' : 'standby';
    case 'ready':
      return undefined;
    default:
      return assertNever(d.status, 'deployment status');
  }
}

/** How many of `routes` of one stickiness the panel leaves out (`shown` is a subset of `routes`). */
function notShown(
  routes: readonly Route[],
  shown: readonly Route[],
  stickiness: Route['stickiness'],
): number {
  const count = (list: readonly Route[]) => list.filter((r) => r.stickiness === stickiness).length;
  return count(routes) - count(shown);
}

/**
 * Attaches a posted confirmation to its plan, so the followed progress edits it; when the switch has
 * ended already (the message joined it as it ended, after its last progress was followed), shows that
 * end on the message here (see ChatService.attach).
 */
async function attachPosted(
  deps: Pick<ConsoleDeps, 'chat' | 'surface'>,
  planId: string,
  ref: MessageRef,
): Promise<void> {
  const ended = await deps.chat.attach(planId, ref);
  if (ended !== undefined) await deps.surface.report(ended, [ref]);
}

/** Registers the console routes on the shared HTTP server. */
export function registerConsole(http: HttpServer, deps: ConsoleDeps): { close(): void } {
  const clock = deps.clock ?? systemClock;
  const page = readFileSync(PAGE_URL, 'utf8');
  /** Open event streams, each with the function that unsubscribes it (idempotent). */
  const streams = new Map<ServerResponse, () => void>();
  const actor = (user: string) => ({ surface: 'console' as const, userId: user, displayName: user });
  /** The token and the session value of its login cookie, when the console has a login. */
  const login =
    deps.token === undefined ? undefined : { token: deps.token, session: consoleSession(deps.token) };
  /**
   * Without a token: why a request is not from a browser on this machine, or undefined. The name used
   * must be a loopback one (a web page can point a name of its own at 127.0.0.1: DNS rebinding), and
   * the request must not come through a proxy: one on this machine connects from loopback with a
   * loopback Host (`proxy_pass http://127.0.0.1:3000`) but forwards for whoever reaches it.
   */
  const notLocal = (req: IncomingMessage): string | undefined => {
    if (!isLoopbackHostHeader(req.headers.host))
      return 'without SWITCHYARD_CONSOLE_TOKEN the console answers on a loopback address only: open http://127.0.0.1:<port>/ or http://localhost:<port>/';
    const proxied = forwardingHeader(req);
    if (proxied !== undefined)
      return `this request came through a proxy (${proxied}): without SWITCHYARD_CONSOLE_TOKEN the console serves browsers on this machine only; set SWITCHYARD_CONSOLE_TOKEN to put a proxy in front of it`;
    return undefined;
  };
  const refuseNotLocal = (res: ServerResponse, message: string) =>
    sendJson(res, 403, { error: 'forbidden', message });
  const unauthorized = (res: ServerResponse) =>
    sendJson(res, 401, {
      error: 'unauthorized',
      message: 'the console needs its token (SWITCHYARD_CONSOLE_TOKEN): open /?token=<token> once',
    });
  // Every console route but the health check goes through this. With a token, the request must carry
  // it; without one the console serves loopback only, to a loopback name and not through a proxy.
  const guarded = (handler: Handler): Handler =>
    login === undefined
      ? (req, res, params) => {
          const refusal = notLocal(req);
          if (refusal === undefined) return handler(req, res, params);
          refuseNotLocal(res, refusal);
        }
      : (req, res, params) => {
          if (loggedIn(req, login)) return handler(req, res, params);
          unauthorized(res);
        };

  http.route('GET', '/', (req, res) => {
    const refusal = login === undefined ? notLocal(req) : undefined;
    if (refusal !== undefined) {
      refuseNotLocal(res, refusal);
      return;
    }
    if (login !== undefined) {
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      // A login link (`/?token=…`) is never answered with the page at that address, even to a browser
      // that holds the cookie already (the link opened again from a bookmark or a runbook): the secret
      // would stay in the address bar, the tab's URL and the history entry of every visit.
      if (query.has('token')) {
        const given = query.get('token') ?? undefined;
        if (!sameSecret(given, login.token)) {
          sendText(
            res,
            401,
            'Switchyard console: open this address with ?token=<SWITCHYARD_CONSOLE_TOKEN>.\n',
          );
          return;
        }
        // Logged in: a cookie only this site sends (the session value, not the token), and the token
        // dropped from the address bar. `Secure` when this request came over TLS: the cookie is then
        // never sent over plain HTTP. A proxy's X-Forwarded-Proto is not taken for it: anyone can send
        // that header, and no proxy is configured as trusted.
        const secure = (req.socket as Partial<TLSSocket>).encrypted === true ? '; Secure' : '';
        res.writeHead(303, {
          location: '/',
          'set-cookie': `${CONSOLE_COOKIE}=${login.session}; HttpOnly; SameSite=Strict; Path=/${secure}`,
        });
        res.end();
        return;
      }
      if (!loggedIn(req, login)) {
        sendText(res, 401, 'Switchyard console: open this address with ?token=<SWITCHYARD_CONSOLE_TOKEN>.\n');
        return;
      }
    }
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy':
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
      // No other site may frame the console (clickjacking a Rollback button).
      'x-frame-options': 'DENY',
    });
    res.end(page);
  });

  http.route(
    'GET',
    '/console/api/timeline',
    guarded((req, res) => {
      const user = new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? undefined;
      // When the channel began and what it no longer keeps: the page says so above the entries.
      sendJson(res, 200, {
        entries: deps.surface.timeline(user),
        startedAt: deps.surface.startedAt,
        dropped: deps.surface.dropped,
        kept: deps.surface.kept,
      });
    }),
  );

  http.route(
    'GET',
    '/console/events',
    guarded((req, res) => {
      if (req.method === 'HEAD') {
        // A HEAD answer has no body: the headers only, no stream kept open.
        res.writeHead(200, EVENT_STREAM_HEADERS);
        res.end();
        return;
      }
      const user = new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? undefined;
      res.writeHead(200, EVENT_STREAM_HEADERS);
      const cleanups: (() => void)[] = [];
      let open = true;
      const stop = () => {
        if (!open) return;
        open = false;
        for (const cleanup of cleanups.splice(0)) cleanup();
        streams.delete(res);
      };
      // Every write goes through here: none after the stream ended (an entry posted during shutdown),
      // and a stream whose reader stopped reading is cut once too much waits for it.
      const send = (chunk: string) => {
        if (!open || res.writableEnded || res.destroyed) return;
        res.write(chunk);
        if (res.writableLength > MAX_STREAM_BUFFER_BYTES) {
          deps.logger?.warn(
            { buffered: res.writableLength, user },
            'console event stream not read by its page; closed (the page reconnects and reloads)',
          );
          stop();
          res.destroy();
        }
      };
      streams.set(res, stop);
      req.on('close', stop);
      res.on('close', stop);
      send(`event: hello\ndata: ${JSON.stringify({ at: clock.now() })}\n\n`);
      cleanups.push(
        deps.surface.onEntry((entry: ConsoleEntry) => {
          if (entry.visibleTo !== undefined && entry.visibleTo !== user) return;
          send(`event: entry\ndata: ${JSON.stringify(entry)}\n\n`);
        }),
      );
      const offPlatform = deps.platform.subscribe?.((event: PlatformEvent) => {
        send(`event: platform\ndata: ${JSON.stringify(event)}\n\n`);
      });
      if (offPlatform) cleanups.push(offPlatform);
      const heartbeat = setInterval(() => send(': keep-alive\n\n'), 15_000);
      heartbeat.unref();
      cleanups.push(() => clearInterval(heartbeat));
      // The client may have gone already (a subscription made after `close` must not stay).
      if (req.destroyed || res.destroyed) stop();
    }),
  );

  http.route(
    'POST',
    '/console/api/command',
    guarded(async (req, res) => {
      const body = await parseBody(req, res, commandBody);
      if (!body) return;
      const text = body.text.trim();
      // Anything after a "/" is a command, a bare "/" included (it gets the list of commands).
      const m = /^\/(\S*)\s*(.*)$/s.exec(text);
      if (!m) {
        // Chat stays chat (the console is a channel); a command typed without its "/" gets a hint.
        deps.surface.postUser(body.user, text);
        const hint = slashHint(text);
        if (hint !== undefined) deps.surface.postView(hint, { visibleTo: body.user });
        sendJson(res, 200, { ok: true });
        return;
      }
      const name = m[1] ?? '';
      const count = (outcome: CommandOutcome) =>
        deps.metrics?.commands.inc({
          surface: 'console',
          // A label value per known command only: typed text must not grow /metrics without bound.
          command: (COMMANDS as readonly string[]).includes(name) ? name : 'other',
          outcome,
        });
      let reply: ChatReply;
      try {
        reply = await deps.chat.command(actor(body.user), name, commandArgs(m[2] ?? ''));
        // The same outcome values as Slack and Discord (src/metrics.ts): the console always shows the reply.
        count(commandReplyOutcome(reply));
      } catch (e) {
        // Counted as on Slack and Discord. Redis unreachable: the HTTP server answers 503 and the page
        // says "Not sent", to try again. Anything else (the deploy platform unreachable, slow, or
        // answering an error) is said in the channel to the sender alone, as Slack and Discord say it:
        // what failed and its code, not "internal error".
        count(CommandOutcome.error);
        if (redisUnavailable(e)) throw e;
        logCommandFault(deps.logger, e, { command: name, user: body.user }, 'console command failed');
        reply = { view: commandFaultView(e, name), visibility: 'ephemeral' };
      }
      // The typed line goes into the channel once the command was handled, right before its answer: a
      // command refused with an error (Redis unreachable: the page says "Not sent") must not show in
      // everyone's channel as if it had been run. With an answer for the sender alone (a refusal, usage)
      // it is the sender's alone too, as on Slack, where a slash command answered ephemerally shows
      // nobody else what was typed.
      deps.surface.postUser(body.user, text, reply.visibility === 'ephemeral' ? body.user : undefined);
      const ref = deps.surface.postView(
        reply.view,
        reply.visibility === 'ephemeral' ? { visibleTo: body.user } : {},
      );
      if (reply.planId) await attachPosted(deps, reply.planId, ref);
      sendJson(res, 200, { ok: true, messageId: ref.messageId });
    }),
  );

  http.route(
    'POST',
    '/console/api/action',
    guarded(async (req, res) => {
      const body = await parseBody(req, res, actionBody);
      if (!body) return;
      const action = actionLabel(body.actionId);
      const count = (outcome: string) => deps.metrics?.clicks.inc({ surface: 'console', action, outcome });
      let out: ClickReply;
      try {
        out = await deps.chat.click(actor(body.user), body.actionId, {
          surface: 'console',
          channel: CONSOLE_CHANNEL,
          messageId: body.messageId,
        });
      } catch (e) {
        // As a command's fault (above) and a click's on Slack and Discord: Redis unreachable answers 503
        // (the page says "Not sent", to click again); anything else is said to the clicker alone, what
        // failed and its code, the message clicked left as it was.
        count('error');
        if (redisUnavailable(e)) throw e;
        logCommandFault(deps.logger, e, { action, user: body.user }, 'console click failed');
        deps.surface.postView(faultView(e, 'handle this click'), { visibleTo: body.user });
        sendJson(res, 200, { ok: true, outcome: 'error' });
        return;
      }
      count(out.outcome);
      if (out.progress) {
        // The message follows the job only from this click on: the job's progress so far, as progress
        // (ordered with the states the job publishes), not a view.
        await deps.surface.report(out.progress, [
          { surface: 'console', channel: CONSOLE_CHANNEL, messageId: body.messageId },
        ]);
      } else if (out.ended) {
        // The job had already ended: its outcome is the message's final state, applied as the job's
        // end (as Slack and Discord do), so no state of the job delivered after it paints over it.
        await deps.surface.report(out.ended, [
          { surface: 'console', channel: CONSOLE_CHANNEL, messageId: body.messageId },
        ]);
      } else if (out.update)
        deps.surface.updateClickView(body.messageId, out.update, out.jobId ?? out.approvalJobId);
      if (out.ephemeral) deps.surface.postView(out.ephemeral, { visibleTo: body.user });
      if (out.post) {
        const ref = deps.surface.postView(
          out.post.view,
          out.post.visibility === 'ephemeral' ? { visibleTo: body.user } : {},
        );
        if (out.post.planId) await attachPosted(deps, out.post.planId, ref);
      }
      sendJson(res, 200, { ok: true, outcome: out.outcome, ...(out.jobId ? { jobId: out.jobId } : {}) });
    }),
  );

  /**
   * Reads what the live panel shows of each environment. Anything the platform fails with is thrown (the
   * route below says it).
   */
  const readPanel = async () => {
    const envs = await deps.platform.listEnvironments();
    return await Promise.all(
      envs.map(async (slug) => {
        const [snap, routes] = await Promise.all([deps.platform.snapshot(slug), deps.platform.routing(slug)]);
        // The live deployment is always listed, however many pushes came after it.
        const listed = listedDeployments(snap, PANEL_DEPLOYMENTS);
        const shown = panelDomains(routes, listed, snap);
        const probes = deps.platform.probe
          ? await Promise.all(shown.map((r) => deps.platform.probe?.(r.hostname, AbortSignal.timeout(2000))))
          : [];
        const reactivating = reactivatingIds(snap, probes);
        const byId = new Map(snap.deployments.map((d) => [d.id, d]));
        return {
          slug,
          kind: snap.environment.kind,
          rolledBack: snap.environment.rolledBack,
          rolledBackAt: snap.environment.rolledBackAt ?? null,
          rolledBackBy: snap.environment.rolledBackBy ?? null,
          current: snap.environment.currentDeploymentId ?? null,
          deployments: listed.map((d) => ({
            id: d.id,
            status: d.status,
            ...(reactivating.has(d.id) ? { reactivating: true } : {}),
            branch: d.branch,
            message: d.commit.message,
            createdAt: d.createdAt,
          })),
          domains: shown.map((r, i) => {
            const why = unservedWhy(byId.get(r.deploymentId ?? ''), reactivating, probes[i]);
            return {
              hostname: r.hostname,
              stickiness: r.stickiness,
              routedTo: r.deploymentId ?? null,
              servedBy: probes[i]?.deploymentId ?? null,
              status: probes[i]?.status ?? null,
              ...(why === undefined ? {} : { why }),
            };
          }),
          // Per-deployment and branch domains of deployments the panel does not list: counted, neither
          // shown nor probed.
          otherDeploymentDomains: notShown(routes, shown, 'deployment'),
          otherBranchDomains: notShown(routes, shown, 'branch'),
        };
      }),
    );
  };
  /** The fault the panel last logged, until a read works again: see the route. */
  let panelFault: string | undefined;

  http.route(
    'GET',
    '/console/api/platform',
    guarded(async (_req, res) => {
      let environments: Awaited<ReturnType<typeof readPanel>>;
      try {
        environments = await readPanel();
      } catch (e) {
        // The platform unreachable, slow or answering an error: the page says so over the panel, keeping
        // its last read marked as such. Said in the log once per reason until a read works again (every
        // open page asks every 5 s), and per message for a fault that is not the platform's (a bug).
        const err = asSwitchyardError(e);
        const reason = faultReason(err);
        const outage = err.code.startsWith('platform_') || err.code === 'redis_unavailable';
        const key = outage ? reason : `${reason} ${err.message}`;
        if (key !== panelFault) {
          panelFault = key;
          logCommandFault(
            deps.logger,
            e,
            { route: 'platform panel' },
            'console panel could not read the platform',
          );
        }
        sendJson(res, outage ? 503 : 500, {
          error: err.code,
          message: `the platform could not be read (${reason})`,
          reason,
        });
        return;
      }
      if (panelFault !== undefined) {
        panelFault = undefined;
        deps.logger?.info({ route: 'platform panel' }, 'console panel reads the platform again');
      }
      sendJson(res, 200, {
        platform: deps.platform.name,
        now: clock.now(),
        canPush: Boolean(deps.push),
        canAlert: Boolean(deps.fireAlert),
        // Whether "served by" is what answered a request (the local router's probe), or only where the
        // platform routes each domain (Unkey, Vercel: Switchyard cannot send them a request to see).
        canProbe: Boolean(deps.platform.probe),
        environments,
      });
    }),
  );

  http.route(
    'POST',
    '/console/api/push',
    guarded(async (req, res) => {
      if (!deps.push) {
        sendJson(res, 404, {
          error: 'not_available',
          message: 'simulated pushes exist only on the local platform',
        });
        return;
      }
      const body = await parseBody(req, res, pushBody);
      if (!body) return;
      try {
        const d = await deps.push({
          environment: body.environment,
          ...(body.branch === undefined ? {} : { branch: body.branch }),
          ...(body.message === undefined ? {} : { message: body.message }),
          ...(body.user === undefined ? {} : { author: body.user }),
          ...(body.fail === undefined ? {} : { fail: body.fail }),
        });
        sendJson(res, 201, { ok: true, deploymentId: d.id });
      } catch (e) {
        sendJson(res, 400, { error: 'push_refused', message: (e as Error).message });
      }
    }),
  );

  http.route(
    'POST',
    '/console/api/alert',
    guarded(async (req, res) => {
      if (!deps.fireAlert) {
        sendJson(res, 404, { error: 'not_available', message: 'alerts are not wired in this process' });
        return;
      }
      const body = await parseBody(req, res, alertBody);
      if (!body) return;
      const results = await deps.fireAlert(
        body.environment,
        body.title ?? `High error rate on ${body.environment}`,
      );
      sendJson(res, 202, {
        ok: true,
        outcome: results.map((r) => r.outcome).join(', '),
        // what the outcome means for this alert, in words (e.g. why no rollback is suggested)
        detail: results.flatMap((r) => (r.detail ? [r.detail] : [])).join(' '),
      });
    }),
  );

  http.route('GET', '/console/health', (_req, res) => sendText(res, 200, 'ok'));

  return {
    close() {
      // Unsubscribe first: an entry posted after this (a progress edit during shutdown) must find no
      // listener writing to an ended stream.
      for (const [stream, stop] of [...streams]) {
        stop();
        stream.end();
      }
      streams.clear();
    },
  };
}
