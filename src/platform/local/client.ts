/**
 * `LocalPlatformClient`: the DeployPlatform port over the local platform's HTTP API (http-api.ts), so a
 * worker in another process acts on the platform that lives in the `npm start` process (or in a test).
 * Every response is zod-parsed; refusals come back as RefusalError, faults as PlatformHttpError with
 * the request named. Probes go through the same router with the domain's Host header.
 */
import { z } from 'zod';
import { RefusalCode } from '../../domain/result.js';
import type { Deployment, EnvironmentSnapshot } from '../../domain/types.js';
import { PlatformHttpError, RefusalError } from '../../errors.js';
import type {
  DeployPlatform,
  OperationRef,
  OperationStatus,
  ProbeResult,
  Route,
  SwitchRequest,
} from '../port.js';
import { API_PREFIX } from './http-api.js';
import { probeResult } from './router.js';

const deploymentSchema = z.object({
  id: z.string(),
  projectId: z.string(),
  environment: z.string(),
  branch: z.string(),
  commit: z.object({ sha: z.string(), message: z.string(), author: z.string() }),
  createdAt: z.number(),
  readyAt: z.number().optional(),
  status: z.enum(['building', 'ready', 'failed', 'standby', 'stopped']),
});
const domainSchema = z.object({
  hostname: z.string(),
  stickiness: z.enum(['live', 'environment', 'branch', 'deployment']),
  environment: z.string(),
  branch: z.string().optional(),
  deploymentId: z.string().optional(),
});
const snapshotSchema = z.object({
  project: z.object({ id: z.string(), name: z.string() }),
  environment: z.object({
    slug: z.string(),
    kind: z.enum(['production', 'preview']),
    projectId: z.string(),
    rolledBack: z.boolean(),
    rolledBackAt: z.number().optional(),
    rolledBackBy: z.string().optional(),
    rolledBackSince: z.number().optional(),
    currentDeploymentId: z.string().optional(),
    productionBranch: z.string().optional(),
  }),
  deployments: z.array(deploymentSchema),
  domains: z.array(domainSchema),
  liveHistory: z.array(
    z.object({
      deploymentId: z.string(),
      since: z.number(),
      via: z.enum(['deploy', 'rollback', 'promote']),
      by: z.string().optional(),
      // Absent from older local platforms and from entries they recorded without it.
      jobId: z.string().optional(),
    }),
  ),
  readAt: z.number(),
});
const opRefSchema = z.object({
  id: z.string(),
  action: z.enum(['rollback', 'promote']),
  environment: z.string(),
  targetId: z.string(),
  startedAt: z.number(),
});
const opStatusSchema = z.object({
  id: z.string(),
  state: z.enum(['pending', 'reactivating', 'switching', 'succeeded', 'failed']),
  // `retryable`: the operation switched nothing and asking again may go through (the platform
  // restarted mid-way); the job retries it instead of failing. Absent from older platforms.
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean().optional() }).optional(),
  updatedAt: z.number(),
});
const errorSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    context: z.record(z.string(), z.unknown()).optional(),
  }),
  retry: z.boolean().optional(),
});
const refusalCodes = new Set<string>(Object.values(RefusalCode));

/** Strips `undefined` optionals that zod leaves in place (exactOptionalPropertyTypes). */
function clean<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export interface LocalPlatformClientOptions {
  /** e.g. `http://127.0.0.1:8080` (the router's address, which also serves the API). */
  readonly baseUrl: string;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

export class LocalPlatformClient implements DeployPlatform {
  readonly name = 'local';
  private readonly base: URL;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;

  constructor(opts: LocalPlatformClientOptions) {
    this.base = new URL(opts.baseUrl);
    this.fetchImpl = opts.fetch ?? fetch;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    schema: z.ZodType<T>,
    body?: unknown,
  ): Promise<T> {
    const url = new URL(`${API_PREFIX}${path}`, this.base).toString();
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const timedOut = (e as Error).name === 'TimeoutError';
      throw new PlatformHttpError(
        0,
        method,
        url,
        undefined,
        timedOut ? `timed out after ${this.timeoutMs} ms` : (e as Error).message,
        {
          retry: true,
          code: timedOut ? 'platform_timeout' : 'platform_unavailable',
        },
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new PlatformHttpError(res.status, method, url, undefined, 'response is not JSON', {
        retry: res.status >= 500,
      });
    }
    if (!res.ok) {
      const err = errorSchema.safeParse(json);
      if (err.success && refusalCodes.has(err.data.error.code)) {
        throw new RefusalError({
          code: err.data.error.code as RefusalCode,
          message: err.data.error.message,
          ...(err.data.error.context ? { context: err.data.error.context } : {}),
        });
      }
      const retry = err.success ? (err.data.retry ?? res.status >= 500) : res.status >= 500;
      throw new PlatformHttpError(
        res.status,
        method,
        url,
        err.success ? err.data.error.code : undefined,
        err.success ? err.data.error.message : text.slice(0, 200),
        {
          retry,
          ...(err.success && err.data.error.code === 'operation_in_progress'
            ? { code: 'operation_in_progress' as const }
            : {}),
        },
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new PlatformHttpError(
        res.status,
        method,
        url,
        undefined,
        `unexpected response: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
        {
          retry: false,
        },
      );
    }
    return clean(parsed.data);
  }

  async listEnvironments(): Promise<readonly string[]> {
    return (await this.call('GET', '/environments', z.object({ environments: z.array(z.string()) })))
      .environments;
  }

  async snapshot(environment: string): Promise<EnvironmentSnapshot> {
    return (await this.call(
      'GET',
      `/environments/${encodeURIComponent(environment)}/snapshot`,
      snapshotSchema,
    )) as EnvironmentSnapshot;
  }

  async getDeployment(id: string): Promise<Deployment | undefined> {
    try {
      return (await this.call(
        'GET',
        `/deployments/${encodeURIComponent(id)}`,
        deploymentSchema,
      )) as Deployment;
    } catch (e) {
      if (e instanceof RefusalError && e.code === 'unknown_deployment') return undefined;
      throw e;
    }
  }

  async routing(environment: string): Promise<readonly Route[]> {
    const r = await this.call(
      'GET',
      `/environments/${encodeURIComponent(environment)}/routing`,
      z.object({ routes: z.array(domainSchema) }),
    );
    return r.routes as Route[];
  }

  async rollback(request: SwitchRequest): Promise<OperationRef> {
    return this.call('POST', '/rollback', opRefSchema, request);
  }

  async promote(request: SwitchRequest): Promise<OperationRef> {
    return this.call('POST', '/promote', opRefSchema, request);
  }

  async operation(ref: OperationRef): Promise<OperationStatus> {
    return (await this.call('POST', '/operations/status', opStatusSchema, ref)) as OperationStatus;
  }

  /** Asks the router (this client's base URL) which deployment answers `hostname`. */
  probe(hostname: string, signal?: AbortSignal): Promise<ProbeResult> {
    return probeResult(Number(this.base.port || 80), hostname, {
      host: this.base.hostname.replace(/^\[|\]$/g, ''),
      timeoutMs: this.timeoutMs,
      ...(signal === undefined ? {} : { signal }),
    });
  }

  async health(): Promise<void> {
    await this.call('GET', '/health', z.object({ ok: z.literal(true) }));
  }

  async close(): Promise<void> {}
}
