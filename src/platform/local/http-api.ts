/**
 * The local platform's HTTP API, served on the router's port under `/_switchyard/` (and on the router's
 * own address). It is both the operator surface (push a deployment, make a build fail, stop a
 * deployment, show routing) and the wire API that `LocalPlatformClient` uses, so worker processes other
 * than the one hosting the platform can act on it. Request bodies are zod-parsed; refusals answer 409
 * with `{ error: { code, message, context }, retry }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { formatIssues } from '../../config.js';
import { asSwitchyardError, RefusalError } from '../../errors.js';
import {
  BodyTooLargeError,
  crossSiteReason,
  forwardingHeader,
  isJsonContentType,
  isLoopbackAddress,
  isLoopbackHostHeader,
  readBody,
  sendJson,
} from '../../http.js';
import type { OperationRef } from '../port.js';
import type { LocalPlatform } from './platform.js';

export const API_PREFIX = '/_switchyard';

const switchBody = z.object({
  environment: z.string().min(1),
  targetId: z.string().min(1),
  requestedBy: z.string().min(1).optional(),
  jobId: z.string().min(1).optional(),
  expectedCurrent: z.string().min(1).optional(),
  expectedRolledBack: z.boolean().optional(),
});
const pushBody = z.object({
  environment: z.string().min(1),
  branch: z.string().min(1).max(200).optional(),
  message: z.string().max(500).optional(),
  author: z.string().max(200).optional(),
  fail: z.boolean().optional(),
});
const operationRefSchema = z.object({
  id: z.string().min(1),
  action: z.enum(['rollback', 'promote']),
  environment: z.string().min(1),
  targetId: z.string().min(1),
  startedAt: z.number(),
});

async function jsonBody<T>(
  req: IncomingMessage,
  schema: z.ZodType<T>,
): Promise<{ ok: true; value: T } | { ok: false; message: string }> {
  let raw: unknown;
  try {
    const buf = await readBody(req, 64 * 1024);
    raw = buf.length === 0 ? {} : JSON.parse(buf.toString('utf8'));
  } catch (e) {
    if (e instanceof BodyTooLargeError) return { ok: false, message: e.message };
    return { ok: false, message: 'body: expected JSON' };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { ok: false, message: formatIssues(parsed.error, raw) };
  return { ok: true, value: parsed.data };
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = asSwitchyardError(e);
  const status =
    e instanceof RefusalError
      ? err.code === 'unknown_environment' || err.code === 'unknown_deployment'
        ? 404
        : 409
      : err.retry
        ? 503
        : 500;
  sendJson(res, status, {
    error: { code: err.code, message: err.message, context: err.context },
    retry: err.retry,
  });
}

/**
 * Why the operator API refuses a request before reading it, or undefined. It moves traffic without
 * plans, allow lists or the audit log, so it is for this machine's operator only: a loopback peer
 * (the router may listen on a reachable HOST), not through a proxy, a loopback name (a web page can
 * point a name of its own at 127.0.0.1: DNS rebinding), no other site's page behind a state-changing
 * request (a browser sends a cross-site form or text/plain POST without asking), and JSON bodies only.
 */
function refusal(req: IncomingMessage): { status: number; code: string; message: string } | undefined {
  if (!isLoopbackAddress(req.socket.remoteAddress))
    return {
      status: 403,
      code: 'forbidden',
      message: 'the operator API answers this machine only (loopback)',
    };
  // The router's port is the one put behind a reverse proxy or tunnel to show the deployments (nginx
  // `proxy_pass http://127.0.0.1:8080`, `ngrok http 8080 --host-header=shop.localhost`), and the router
  // hands it `/_switchyard/` whatever the Host: such a proxy connects from loopback with a loopback
  // Host, yet forwards for whoever reached it. What it adds says so; LocalPlatformClient sends none.
  const proxied = forwardingHeader(req);
  if (proxied !== undefined)
    return {
      status: 403,
      code: 'forbidden',
      message: `the operator API answers this machine's operator only, and this request came through a proxy (${proxied}): call http://127.0.0.1:<port>/_switchyard/ directly, not through a proxy or tunnel`,
    };
  if (!isLoopbackHostHeader(req.headers.host))
    return {
      status: 403,
      code: 'forbidden',
      message: 'the operator API answers on a loopback name only: use http://127.0.0.1:<port>/_switchyard/',
    };
  if (req.method === 'GET' || req.method === 'HEAD') return undefined;
  const fromPage = crossSiteReason(req);
  if (fromPage !== undefined)
    return {
      status: 403,
      code: 'forbidden',
      message: `not acting on a request from another site (${fromPage})`,
    };
  const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
  if ((hasBody || req.headers['transfer-encoding'] !== undefined) && !isJsonContentType(req))
    return {
      status: 415,
      code: 'unsupported_media_type',
      message: 'body: expected content-type application/json',
    };
  return undefined;
}

/** Node request listener for the local platform API; answers 404 outside `/_switchyard/`. */
export function createLocalApi(platform: LocalPlatform): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const refused = refusal(req);
    if (refused !== undefined) {
      req.resume();
      sendJson(res, refused.status, {
        error: { code: refused.code, message: refused.message },
        retry: false,
      });
      return;
    }
    void handle(platform, req, res).catch((e) => {
      if (!res.headersSent) sendError(res, e);
      else res.end();
    });
  };
}

async function handle(platform: LocalPlatform, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://local');
  const path = url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) : url.pathname;
  const method = req.method ?? 'GET';
  const segments = path.split('/').filter(Boolean);
  const parts: string[] = [];
  for (const segment of segments) {
    try {
      parts.push(decodeURIComponent(segment));
    } catch {
      // A `%` not followed by two hex digits, or bytes that are not UTF-8: the client's mistake, not a 500.
      sendJson(res, 400, {
        error: {
          code: 'invalid_input',
          message: `path segment "${segment.slice(0, 100)}": malformed percent-encoding`,
        },
        retry: false,
      });
      return;
    }
  }
  const [a, b, c] = parts;

  if (method === 'GET' && parts.length === 0) {
    sendJson(res, 200, {
      name: 'switchyard local platform',
      endpoints: [
        'GET /_switchyard/state',
        'GET /_switchyard/environments',
        'GET /_switchyard/environments/:env/snapshot',
        'GET /_switchyard/environments/:env/routing',
        'GET /_switchyard/deployments/:id',
        'POST /_switchyard/push {environment, branch?, message?, author?, fail?}',
        'POST /_switchyard/deployments/:id/stop',
        'POST /_switchyard/rollback {environment, targetId, requestedBy?, jobId?, expectedCurrent?, expectedRolledBack?}',
        'POST /_switchyard/promote {environment, targetId, requestedBy?, jobId?, expectedCurrent?, expectedRolledBack?}',
        'POST /_switchyard/operations/status {operation ref}',
      ],
    });
    return;
  }
  if (method === 'GET' && a === 'health') {
    await platform.health();
    sendJson(res, 200, { ok: true });
    return;
  }
  if (method === 'GET' && a === 'state' && parts.length === 1) {
    sendJson(res, 200, platform.dump());
    return;
  }
  if (method === 'GET' && a === 'environments' && parts.length === 1) {
    sendJson(res, 200, { environments: await platform.listEnvironments() });
    return;
  }
  if (method === 'GET' && a === 'environments' && b && c === 'snapshot') {
    sendJson(res, 200, await platform.snapshot(b));
    return;
  }
  if (method === 'GET' && a === 'environments' && b && c === 'routing') {
    sendJson(res, 200, { routes: await platform.routing(b) });
    return;
  }
  if (method === 'GET' && a === 'deployments' && b && parts.length === 2) {
    const d = await platform.getDeployment(b);
    if (!d)
      sendJson(res, 404, {
        error: { code: 'unknown_deployment', message: `No deployment ${b}.` },
        retry: false,
      });
    else sendJson(res, 200, d);
    return;
  }
  if (method === 'POST' && a === 'deployments' && b && c === 'stop') {
    sendJson(res, 200, await platform.stop(b));
    return;
  }
  if (method === 'POST' && a === 'push' && parts.length === 1) {
    const body = await jsonBody(req, pushBody);
    if (!body.ok) {
      sendJson(res, 400, { error: { code: 'invalid_input', message: body.message }, retry: false });
      return;
    }
    const v = body.value;
    const d = await platform.push({
      environment: v.environment,
      ...(v.branch === undefined ? {} : { branch: v.branch }),
      ...(v.message === undefined ? {} : { message: v.message }),
      ...(v.author === undefined ? {} : { author: v.author }),
      ...(v.fail === undefined ? {} : { fail: v.fail }),
    });
    sendJson(res, 201, d);
    return;
  }
  if (method === 'POST' && (a === 'rollback' || a === 'promote') && parts.length === 1) {
    const body = await jsonBody(req, switchBody);
    if (!body.ok) {
      sendJson(res, 400, { error: { code: 'invalid_input', message: body.message }, retry: false });
      return;
    }
    const request = {
      environment: body.value.environment,
      targetId: body.value.targetId,
      ...(body.value.requestedBy === undefined ? {} : { requestedBy: body.value.requestedBy }),
      ...(body.value.jobId === undefined ? {} : { jobId: body.value.jobId }),
      ...(body.value.expectedCurrent === undefined ? {} : { expectedCurrent: body.value.expectedCurrent }),
      ...(body.value.expectedRolledBack === undefined
        ? {}
        : { expectedRolledBack: body.value.expectedRolledBack }),
    };
    const ref = a === 'rollback' ? await platform.rollback(request) : await platform.promote(request);
    sendJson(res, 202, ref);
    return;
  }
  if (method === 'POST' && a === 'operations' && b === 'status') {
    const body = await jsonBody(req, operationRefSchema);
    if (!body.ok) {
      sendJson(res, 400, { error: { code: 'invalid_input', message: body.message }, retry: false });
      return;
    }
    const ref: OperationRef = body.value;
    sendJson(res, 200, await platform.operation(ref));
    return;
  }
  sendJson(res, 404, {
    error: { code: 'not_found', message: `no local platform endpoint ${method} ${url.pathname}` },
    retry: false,
  });
}
