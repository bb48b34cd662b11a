/**
 * A stateful fake of Unkey's API v2 deployment endpoints on 127.0.0.1 (port 0), written from Unkey's
 * published OpenAPI document: listDeployments (cursor paging), getDeployment, rollbackDeployment and
 * promoteDeployment (202, applied after a delay on the injected clock), the documented error bodies
 * (`{meta:{requestId}, error:{title, detail, status, type}}`), bearer auth with per-key permissions, the
 * server-side rules in their documented order, the rolled-back state (a new push gets no live domain;
 * a promote clears it), and fault injection (429 + Retry-After, 5xx, hanging requests, bad bodies).
 *
 * The deployment lifecycle follows Unkey's source (fc99b6b):
 * - `availableActions` is computed like `svc/api/internal/deployment/actions.go`, and rollback/promote
 *   check `pkg/deploy/deploygate` `targetCore` (ready, desired state running, production, app has a current
 *   deployment, then not current) in that order;
 * - a production deployment that stops being current keeps status `ready` and desired state `running`;
 *   the deploy and promote workflows schedule its desired state to `stopped` 30 minutes later (a rollback
 *   schedules nothing for the deployment it leaves; a rollback or promote clears the target's schedule).
 *   From then on Unkey offers nothing on it and refuses a rollback to it (412 deployment_not_ready); its
 *   status turns `stopped` once its instances are gone (`drainMs`). Production deployments are never
 *   started again;
 * - `superseded` only marks a queued build (`pending`/`awaiting_approval`) of a branch that a newer push to
 *   the same app, environment and branch replaced before it ran (`svc/ctrl/dedup`, `queue_gate.go`);
 * - a rollback runs from the deployment current when it was accepted and does nothing if another switch
 *   (`switchNow`, a dashboard switch; a push going live) replaced that one before it ran
 *   (`rollback_handler.go`); a promote replaces whatever is current then (`promote_handler.go`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, ManualClock } from '../../src/clock.js';
import { LoopbackServer } from './loopback-server.js';

export type FakeStatus =
  | 'pending'
  | 'starting'
  | 'building'
  | 'deploying'
  | 'network'
  | 'finalizing'
  | 'ready'
  | 'failed'
  | 'skipped'
  | 'awaiting_approval'
  | 'stopped'
  | 'superseded'
  | 'cancelled';

/** Unkey's `deployments.desired_state` enum: there is no standby state. */
type DesiredState = 'running' | 'stopped';

interface FakeDeployment {
  readonly id: string;
  readonly seq: number;
  readonly project: string;
  readonly app: string;
  readonly environment: string;
  status: FakeStatus;
  desired: DesiredState;
  readonly git?: { commitSha: string; branch?: string };
  readonly docker?: { image: string };
  readonly createdAt: number;
  updatedAt?: number;
  /** A scheduled change of the desired state to `stopped` (Unkey's ScheduleDesiredStateChange). */
  stopAt?: number;
  /** When the desired state became `stopped` (its status turns `stopped` `drainMs` later). */
  stoppingSince?: number;
}

interface AppState {
  current?: string;
  rolledBack: boolean;
}

interface PendingOp {
  readonly action: 'rollback' | 'promote';
  readonly appKey: string;
  readonly targetId: string;
  readonly dueAt: number;
  /** The app's current deployment when Unkey accepted the switch (a rollback's source). */
  readonly sourceId: string | undefined;
}

/** A fault answered instead of the real endpoint (consumed in order; `endpoint` narrows it). */
export type FakeFault =
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly retryAfter?: string;
      readonly code?: string;
      readonly endpoint?: string;
    }
  | { readonly kind: 'hang'; readonly endpoint?: string }
  | { readonly kind: 'body'; readonly status: number; readonly body: unknown; readonly endpoint?: string };

export interface RecordedRequest {
  readonly endpoint: string;
  readonly body: unknown;
  readonly authorization: string | undefined;
  readonly at: number;
}

export interface UnkeyFakeOptions {
  readonly clock: Clock;
  /** Root key → permissions (e.g. `environment.*.read_deployment`). */
  readonly rootKeys: Readonly<Record<string, readonly string[]>>;
  /** Delay between a 202 and the switch taking effect. */
  readonly switchDelayMs?: number;
  /** A replaced production deployment's desired state turns `stopped` this long after (Unkey: 30 min). */
  readonly stopAfterMs?: number;
  /** Time from desired state `stopped` until the status is `stopped` (the last instance is gone). */
  readonly drainMs?: number;
  /**
   * Unkey's EnvironmentKind per environment slug; default `production` for the slug `production`,
   * `preview` for any other.
   */
  readonly environmentKinds?: Readonly<Record<string, 'production' | 'preview'>>;
  readonly workspace?: string;
  readonly apex?: string;
  /** Custom domains per `project/app` (the live domains). */
  readonly customDomains?: Readonly<Record<string, readonly string[]>>;
  /**
   * Environments that exist before any deployment (`project/app/environment`): in Unkey a project, its
   * apps and environments are made first, so listing an empty one answers an empty list, not 404.
   */
  readonly environments?: readonly string[];
}

const ERR = 'https://unkey.com/docs/errors/unkey';

/** The fake Unkey API; create with `UnkeyFakeServer.start`. */
export class UnkeyFakeServer {
  readonly requests: RecordedRequest[] = [];
  private readonly deployments: FakeDeployment[] = [];
  private readonly apps = new Map<string, AppState>();
  private readonly pending: PendingOp[] = [];
  private readonly faults: FakeFault[] = [];
  private readonly waiters: { done: () => boolean; resolve: () => void }[] = [];
  private precondition: string | undefined;
  private seq = 0;
  private requestSeq = 0;
  private http: LoopbackServer | undefined;

  private constructor(private readonly opts: UnkeyFakeOptions) {}

  static async start(opts: UnkeyFakeOptions): Promise<UnkeyFakeServer> {
    const fake = new UnkeyFakeServer(opts);
    fake.http = await LoopbackServer.start((req, res) => {
      void fake.handle(req, res);
    });
    return fake;
  }

  /** `http://127.0.0.1:<port>` of the fake. */
  get url(): string {
    return this.http?.url ?? '';
  }

  async close(): Promise<void> {
    await this.http?.close();
  }

  // -- test controls -----------------------------------------------------------------------------

  /** Queues a fault for the next matching request. */
  fault(f: FakeFault, times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push(f);
  }

  /** Makes rollback/promote answer 412 precondition_failed with this detail (undefined clears it). */
  setPrecondition(detail: string | undefined): void {
    this.precondition = detail;
  }

  /** Resolves once `n` requests in total have arrived. */
  waitForRequests(n: number): Promise<void> {
    return this.waitUntil(() => this.requests.length >= n);
  }

  /** Resolves once `n` requests to `endpoint` (e.g. `deployments.rollbackDeployment`) have arrived. */
  waitForEndpoint(endpoint: string, n = 1): Promise<void> {
    return this.waitUntil(() => this.requests.filter((r) => r.endpoint === endpoint).length >= n);
  }

  private waitUntil(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ done, resolve }));
  }

  /** Creates a deployment, as a git push or image deploy would. Ready deployments are auto-assigned. */
  push(p: {
    project: string;
    app: string;
    environment: string;
    branch?: string;
    sha?: string;
    image?: string;
    status?: FakeStatus;
  }): string {
    this.settle();
    this.seq += 1;
    const id = `dep_${String(this.seq).padStart(4, '0')}`;
    const sha =
      p.sha ??
      (p.image === undefined ? `${this.seq.toString(16).padStart(7, '0')}${'e'.repeat(33)}` : undefined);
    const d: FakeDeployment = {
      id,
      seq: this.seq,
      project: p.project,
      app: p.app,
      environment: p.environment,
      status: p.status ?? 'ready',
      desired: 'running',
      ...(sha === undefined
        ? {}
        : { git: { commitSha: sha, ...(p.branch === undefined ? {} : { branch: p.branch }) } }),
      ...(p.image === undefined ? {} : { docker: { image: p.image } }),
      createdAt: this.opts.clock.now(),
    };
    // A newer push of a branch supersedes that branch's builds still waiting in the queue (dedup.go).
    if (d.git?.branch !== undefined) {
      for (const older of this.deployments) {
        if (
          appKey(older) === appKey(d) &&
          older.environment === d.environment &&
          older.git?.branch === d.git.branch &&
          (older.status === 'pending' || older.status === 'awaiting_approval')
        ) {
          older.status = 'superseded';
          older.updatedAt = d.createdAt;
        }
      }
    }
    this.deployments.push(d);
    if (!this.apps.has(appKey(d))) this.apps.set(appKey(d), { rolledBack: false });
    if (d.status === 'ready') this.autoAssign(d);
    return id;
  }

  /** Changes a deployment's status (e.g. building → ready, which auto-assigns like a finished build). */
  setStatus(id: string, status: FakeStatus): void {
    this.settle();
    const d = this.find(id);
    if (!d) throw new Error(`no fake deployment ${id}`);
    d.status = status;
    d.updatedAt = this.opts.clock.now();
    if (status === 'stopped') {
      d.desired = 'stopped';
      delete d.stopAt;
      delete d.stoppingSince;
    }
    if (status === 'ready') this.autoAssign(d);
  }

  /** Marks a deployment as shutting down now (desired state stopped while its status is still ready). */
  drain(id: string): void {
    this.settle();
    const d = this.find(id);
    if (!d) throw new Error(`no fake deployment ${id}`);
    d.desired = 'stopped';
    d.stoppingSince = this.opts.clock.now();
    delete d.stopAt;
  }

  /**
   * A rollback or promote made in Unkey's dashboard whose workflow runs now (e.g. ahead of one the API
   * accepted earlier and that is still under way): the same checks (`deploygate`) and effects as the
   * API's, applied at once. Throws when Unkey would refuse it.
   */
  switchNow(action: 'rollback' | 'promote', targetId: string): void {
    this.settle();
    const d = this.find(targetId);
    if (!d) throw new Error(`no fake deployment ${targetId}`);
    const refused = this.gate(d, action);
    if (refused) throw new Error(`Unkey refuses this ${action}: ${refused[0]} (${refused[1]})`);
    const now = this.opts.clock.now();
    const sourceId = this.apps.get(appKey(d))?.current;
    this.applySwitch({ action, appKey: appKey(d), targetId, dueAt: now, sourceId }, now);
  }

  /** Empties an app's live pointer (an app that has never had a current deployment). */
  unsetCurrent(project: string, app: string): void {
    const state = this.apps.get(`${project}/${app}`);
    if (state) delete state.current;
  }

  /** Applies every switch that is due on the clock (also done at the start of each request). */
  tick(): void {
    this.settle();
  }

  /** Whether the app of `project/app` is rolled back (for assertions). */
  isRolledBack(project: string, app: string): boolean {
    return this.apps.get(`${project}/${app}`)?.rolledBack ?? false;
  }

  currentOf(project: string, app: string): string | undefined {
    return this.apps.get(`${project}/${app}`)?.current;
  }

  /** Hostnames currently pointing at a deployment. */
  domainsOf(id: string): string[] {
    const d = this.find(id);
    return d ? this.hostnames(d) : [];
  }

  // -- state machine -------------------------------------------------------------------------------

  private find(id: string): FakeDeployment | undefined {
    return this.deployments.find((d) => d.id === id);
  }

  private isProduction(d: Pick<FakeDeployment, 'environment'>): boolean {
    const kind = this.opts.environmentKinds?.[d.environment];
    return (kind ?? (d.environment === 'production' ? 'production' : 'preview')) === 'production';
  }

  /** A finished production build goes live unless the app is rolled back (deploy workflow swap). */
  private autoAssign(d: FakeDeployment): void {
    if (!this.isProduction(d)) return;
    const app = this.apps.get(appKey(d));
    if (!app || app.rolledBack) return;
    const previous = this.swapLive(app, d, this.opts.clock.now());
    // swapLiveDeployment: the previous live deployment is stopped 30 minutes later (overwrite).
    if (previous) this.scheduleStop(previous, this.opts.clock.now(), true);
  }

  /** Makes `d` the app's current deployment; returns the one it replaced. */
  private swapLive(app: AppState, d: FakeDeployment, at: number): FakeDeployment | undefined {
    const previous = app.current === undefined ? undefined : this.find(app.current);
    app.current = d.id;
    d.updatedAt = at;
    if (previous && previous.id !== d.id) {
      previous.updatedAt = at;
      return previous;
    }
    return undefined;
  }

  /** ScheduleDesiredStateChange(stopped, stopAfterMs); `overwrite: false` keeps an existing schedule. */
  private scheduleStop(d: FakeDeployment, at: number, overwrite: boolean): void {
    if (!overwrite && d.stopAt !== undefined) return;
    d.stopAt = at + (this.opts.stopAfterMs ?? 30 * 60_000);
  }

  /** deploygate targetCore + the current check: the 412 code and Unkey's message, or undefined. */
  private gate(d: FakeDeployment, action: 'rollback' | 'promote'): [string, string] | undefined {
    const app = this.apps.get(appKey(d));
    if (d.status !== 'ready') return ['deployment_not_ready', 'The deployment is not ready.'];
    if (d.desired !== 'running') {
      return ['deployment_not_ready', 'The deployment is shutting down and cannot serve traffic.'];
    }
    if (!this.isProduction(d)) {
      return ['deployment_not_production', 'Only production deployments can be promoted or rolled back.'];
    }
    if (app?.current === undefined) return ['deployment_no_current', 'The app has no current deployment.'];
    if (app.current === d.id && !(action === 'promote' && app.rolledBack)) {
      return ['deployment_is_current', 'The deployment is already the current deployment.'];
    }
    return undefined;
  }

  /** Applies a due rollback/promote workflow (it re-validates the target first, like Unkey's). */
  private applySwitch(op: PendingOp, at: number): void {
    const app = this.apps.get(op.appKey);
    const target = this.find(op.targetId);
    if (!app || !target || this.gate(target, op.action) !== undefined) return;
    // A rollback runs from the deployment that was current when Unkey accepted it and stops, switching
    // nothing, when that one is no longer current (rollback_handler.go: "source deployment is not the
    // current deployment"), e.g. after a dashboard switch or a deploy went live meanwhile. A promote has
    // no such check (promote_handler.go): it replaces whatever is current when it runs.
    if (op.action === 'rollback' && app.current !== op.sourceId) return;
    // Both workflows clear the target's pending schedule so it is not spun down while serving.
    delete target.stopAt;
    if (op.action === 'rollback') {
      this.swapLive(app, target, at);
      app.rolledBack = true;
      return;
    }
    const confirming = app.rolledBack && app.current === target.id;
    const previous = confirming ? undefined : this.swapLive(app, target, at);
    app.rolledBack = false;
    // Promote schedules the demoted deployment for stopping; confirming a rollback schedules the newest
    // ready deployment other than the target (the one rolled back from). Neither overwrites a schedule.
    const old = confirming
      ? this.deployments
          .filter(
            (o) =>
              appKey(o) === op.appKey &&
              o.environment === target.environment &&
              o.id !== target.id &&
              o.status === 'ready',
          )
          .sort((a, b) => b.createdAt - a.createdAt || b.seq - a.seq)[0]
      : previous;
    if (old) this.scheduleStop(old, at, false);
  }

  /** Applies, in time order, every switch, scheduled stop and drain that is due on the clock. */
  private settle(): void {
    const now = this.opts.clock.now();
    const drainMs = this.opts.drainMs ?? 60_000;
    for (;;) {
      type Due = { at: number; apply: () => void };
      const due: Due[] = [];
      const op = [...this.pending].sort((a, b) => a.dueAt - b.dueAt)[0];
      if (op && op.dueAt <= now) {
        due.push({
          at: op.dueAt,
          apply: () => {
            this.pending.splice(this.pending.indexOf(op), 1);
            this.applySwitch(op, op.dueAt);
          },
        });
      }
      for (const d of this.deployments) {
        const stopAt = d.stopAt;
        if (stopAt !== undefined && stopAt <= now) {
          due.push({
            at: stopAt,
            apply: () => {
              delete d.stopAt;
              // ChangeDesiredState never touches the app's current deployment.
              if (this.apps.get(appKey(d))?.current === d.id) return;
              d.desired = 'stopped';
              d.stoppingSince = stopAt;
              d.updatedAt = stopAt;
            },
          });
        }
        const since = d.stoppingSince;
        if (since !== undefined && d.status === 'ready' && since + drainMs <= now) {
          due.push({
            at: since + drainMs,
            apply: () => {
              d.status = 'stopped';
              d.updatedAt = since + drainMs;
              delete d.stoppingSince;
            },
          });
        }
      }
      const next = due.sort((a, b) => a.at - b.at)[0];
      if (!next) return;
      next.apply();
    }
  }

  private hostnames(d: FakeDeployment): string[] {
    const ws = this.opts.workspace ?? 'acme';
    const apex = this.opts.apex ?? 'unkey.app';
    const out: string[] = [];
    if (d.git) out.push(`${d.project}-git-${d.git.commitSha.slice(0, 7)}-${ws}.${apex}`);
    else out.push(`${d.project}-${d.id.toLowerCase().replace(/_/g, '-')}-${ws}.${apex}`);
    const app = this.apps.get(appKey(d));
    if (this.isProduction(d)) {
      if (app?.current === d.id) {
        out.push(`${d.project}-${d.environment}-${ws}.${apex}`);
        out.push(...(this.opts.customDomains?.[appKey(d)] ?? []));
        if (d.git?.branch) out.push(`${d.project}-git-${slug(d.git.branch)}-${ws}.${apex}`);
      }
      return out;
    }
    // Preview environments: the environment and branch domains follow the newest ready deployment.
    const newest = this.deployments
      .filter((o) => o.environment === d.environment && appKey(o) === appKey(d) && o.status === 'ready')
      .sort((a, b) => b.seq - a.seq)[0];
    if (newest?.id === d.id) {
      out.push(`${d.project}-${d.environment}-${ws}.${apex}`);
      if (d.git?.branch) out.push(`${d.project}-git-${slug(d.git.branch)}-${ws}.${apex}`);
    }
    return out;
  }

  /** `availableActions` exactly as Unkey's actions.go computes it. */
  private actionsOf(d: FakeDeployment): string[] {
    const app = this.apps.get(appKey(d));
    const actions: string[] = [];
    const ready = d.status === 'ready';
    const running = d.desired === 'running';
    if (this.isProduction(d)) {
      const hasLive = app?.current !== undefined;
      const isCurrent = app?.current === d.id;
      if (ready && running && hasLive) {
        if (!isCurrent || app?.rolledBack) actions.push('promote');
        if (!isCurrent) actions.push('rollback');
      }
      return actions;
    }
    if (ready && running) actions.push('stop');
    if (d.status === 'stopped') actions.push('start');
    return actions;
  }

  private toWire(d: FakeDeployment): Record<string, unknown> {
    return {
      id: d.id,
      status: d.status,
      isCurrent: this.apps.get(appKey(d))?.current === d.id,
      environment: d.environment,
      app: d.app,
      project: d.project,
      ...(d.git === undefined ? {} : { git: d.git }),
      ...(d.docker === undefined ? {} : { docker: d.docker }),
      availableActions: this.actionsOf(d),
      regions: d.status === 'ready' ? ['us-east-1', 'eu-west-1'] : [],
      ...(d.status === 'failed'
        ? { error: { code: 'build_failed', step: 'building', message: 'docker build exited with code 1' } }
        : {}),
      domains: this.hostnames(d),
      runtime: {
        vCpus: 0.25,
        memoryMib: 256,
        storageMib: 0,
        port: 8080,
        command: [],
        shutdownSignal: 'SIGTERM',
        upstreamProtocol: 'http1',
      },
      createdAt: d.createdAt,
      ...(d.updatedAt === undefined ? {} : { updatedAt: d.updatedAt }),
    };
  }

  // -- HTTP ------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<Handled> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const endpoint = (req.url ?? '').replace(/^\/v2\//, '');
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = text;
    }
    this.requestSeq += 1;
    const requestId = `req_${this.requestSeq}`;
    this.requests.push({
      endpoint,
      body,
      authorization: req.headers.authorization,
      at: this.opts.clock.now(),
    });
    for (const w of [...this.waiters]) {
      if (w.done()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }

    const faultIndex = this.faults.findIndex((f) => f.endpoint === undefined || f.endpoint === endpoint);
    const fault = faultIndex >= 0 ? this.faults[faultIndex] : undefined;
    if (fault) {
      this.faults.splice(faultIndex, 1);
      switch (fault.kind) {
        case 'hang':
          this.http?.hang(res);
          return HANDLED;
        case 'body':
          return send(res, fault.status, fault.body);
        case 'status': {
          const headers: Record<string, string> =
            fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter };
          const title =
            fault.status === 429
              ? 'Too Many Requests'
              : fault.status >= 500
                ? 'Internal Server Error'
                : 'Error';
          const code =
            fault.code ??
            (fault.status === 429 ? 'application/rate_limited' : 'application/unexpected_error');
          return send(
            res,
            fault.status,
            errorBody(requestId, fault.status, title, `injected ${fault.status}`, code),
            headers,
          );
        }
      }
    }

    if (req.method !== 'POST' || !req.url?.startsWith('/v2/')) {
      return sendProblem(
        res,
        requestId,
        404,
        'Not Found',
        `${req.method} ${req.url} not found`,
        'application/invalid_input',
      );
    }

    // Authentication: missing or non-Bearer header → 400, unknown key → 401.
    const auth = req.headers.authorization;
    if (auth === undefined || auth === '') {
      return sendProblem(
        res,
        requestId,
        400,
        'Bad Request',
        'Authorization header is required but was not provided',
        'authentication/missing',
      );
    }
    const m = /^Bearer (.+)$/.exec(auth);
    if (!m?.[1]) {
      return sendProblem(
        res,
        requestId,
        400,
        'Bad Request',
        'Authorization header must use the Bearer scheme',
        'authentication/malformed',
      );
    }
    const permissions = this.opts.rootKeys[m[1]];
    if (permissions === undefined) {
      return sendProblem(
        res,
        requestId,
        401,
        'Unauthorized',
        'The provided root key is invalid.',
        'authentication/key_not_found',
      );
    }

    this.settle();
    switch (endpoint) {
      case 'deployments.listDeployments':
        return this.list(res, requestId, body, permissions);
      case 'deployments.getDeployment':
        return this.get(res, requestId, body, permissions);
      case 'deployments.rollbackDeployment':
        return this.switch(res, requestId, body, permissions, 'rollback');
      case 'deployments.promoteDeployment':
        return this.switch(res, requestId, body, permissions, 'promote');
      default:
        return sendProblem(
          res,
          requestId,
          404,
          'Not Found',
          `POST Path '/v2/${endpoint}' not found`,
          'application/invalid_input',
        );
    }
  }

  private list(
    res: ServerResponse,
    requestId: string,
    body: unknown,
    permissions: readonly string[],
  ): Handled {
    const bad = validate(body, {
      project: 'id',
      app: 'id',
      environment: 'id',
      status: 'statuses',
      limit: 'limit',
      cursor: 'string',
    });
    if (bad) return send(res, 400, validationError(requestId, bad));
    const b = body as {
      project?: string;
      app?: string;
      environment?: string;
      status?: string[];
      limit?: number;
      cursor?: string;
    };
    if (b.app !== undefined && b.project === undefined) {
      return send(
        res,
        400,
        validationError(requestId, {
          location: 'body.app',
          message: "The 'app' filter requires 'project' to be set.",
        }),
      );
    }
    if (b.environment !== undefined && (b.project === undefined || b.app === undefined)) {
      return send(
        res,
        400,
        validationError(requestId, {
          location: 'body.environment',
          message: "The 'environment' filter requires both 'project' and 'app' to be set.",
        }),
      );
    }
    if (!permissions.includes('environment.*.read_deployment')) {
      return sendProblem(
        res,
        requestId,
        403,
        'Forbidden',
        "Your root key requires the 'environment.*.read_deployment' permission to perform this operation",
        'authorization/insufficient_permissions',
      );
    }
    const declared = (this.opts.environments ?? []).map((e) => {
      const [project, app, environment] = e.split('/');
      return { project, app, environment };
    });
    const known = [...this.deployments, ...declared];
    if (b.project !== undefined && !known.some((d) => d.project === b.project)) {
      return sendProblem(
        res,
        requestId,
        404,
        'Not Found',
        'The requested project does not exist.',
        'data/project_not_found',
      );
    }
    if (b.app !== undefined && !known.some((d) => d.project === b.project && d.app === b.app)) {
      return sendProblem(
        res,
        requestId,
        404,
        'Not Found',
        'The requested app does not exist.',
        'data/app_not_found',
      );
    }
    if (
      b.environment !== undefined &&
      !known.some((d) => d.project === b.project && d.app === b.app && d.environment === b.environment)
    ) {
      return sendProblem(
        res,
        requestId,
        404,
        'Not Found',
        'The requested environment does not exist.',
        'data/environment_not_found',
      );
    }
    const all = this.deployments
      .filter(
        (d) =>
          (b.project === undefined || d.project === b.project) &&
          (b.app === undefined || d.app === b.app) &&
          (b.environment === undefined || d.environment === b.environment) &&
          (b.status === undefined || b.status.includes(d.status)),
      )
      .sort((x, y) => y.createdAt - x.createdAt || y.seq - x.seq);
    let start = 0;
    if (b.cursor !== undefined) {
      const after = decodeCursor(b.cursor);
      const at = all.findIndex((d) => d.id === after);
      if (after === undefined || at < 0) {
        return send(
          res,
          400,
          validationError(requestId, {
            location: 'body.cursor',
            message: 'The cursor is invalid or expired.',
          }),
        );
      }
      start = at + 1;
    }
    const limit = b.limit ?? 100;
    const page = all.slice(start, start + limit);
    const hasMore = start + limit < all.length;
    const last = page[page.length - 1];
    return send(res, 200, {
      meta: { requestId },
      data: page.map((d) => this.toWire(d)),
      pagination: hasMore && last ? { cursor: encodeCursor(last.id), hasMore: true } : { hasMore: false },
    });
  }

  private get(
    res: ServerResponse,
    requestId: string,
    body: unknown,
    permissions: readonly string[],
  ): Handled {
    const bad = validate(body, { deploymentId: 'id' }, ['deploymentId']);
    if (bad) return send(res, 400, validationError(requestId, bad));
    const d = this.find((body as { deploymentId: string }).deploymentId);
    // Without read permission Unkey answers 404 too, so existence never leaks.
    if (!d || !allowed(permissions, d, 'read_deployment')) {
      return sendProblem(
        res,
        requestId,
        404,
        'Not Found',
        'The requested deployment does not exist or has been deleted.',
        'data/deployment_not_found',
      );
    }
    return send(res, 200, { meta: { requestId }, data: this.toWire(d) });
  }

  private switch(
    res: ServerResponse,
    requestId: string,
    body: unknown,
    permissions: readonly string[],
    action: 'rollback' | 'promote',
  ): Handled {
    const bad = validate(body, { deploymentId: 'id' }, ['deploymentId']);
    if (bad) return send(res, 400, validationError(requestId, bad));
    const d = this.find((body as { deploymentId: string }).deploymentId);
    if (
      !d ||
      !allowed(permissions, d, action === 'rollback' ? 'rollback_deployment' : 'promote_deployment')
    ) {
      return sendProblem(
        res,
        requestId,
        404,
        'Not Found',
        'The requested deployment does not exist.',
        'data/deployment_not_found',
      );
    }
    const pre = (code: string, detail: string) =>
      sendProblem(res, requestId, 412, 'Precondition Failed', detail, `application/${code}`);
    // deploygate's order: ready; running (not draining); production; app has a current; not current.
    const refused = this.gate(d, action);
    if (refused) return pre(...refused);
    if (this.precondition !== undefined) return pre('precondition_failed', this.precondition);
    const delay = this.opts.switchDelayMs ?? 1_000;
    // Unkey uses the app's current deployment as the rollback source (the request names only the target).
    this.pending.push({
      action,
      appKey: appKey(d),
      targetId: d.id,
      dueAt: this.opts.clock.now() + delay,
      sourceId: this.apps.get(appKey(d))?.current,
    });
    return send(res, 202, { meta: { requestId }, data: {} });
  }
}

function appKey(d: { project: string; app: string }): string {
  return `${d.project}/${d.app}`;
}

function envId(d: FakeDeployment): string {
  return `env_${d.project}_${d.app}_${d.environment}`.replace(/[^a-zA-Z0-9_]/g, '_');
}

function allowed(permissions: readonly string[], d: FakeDeployment, action: string): boolean {
  return (
    permissions.includes(`environment.*.${action}`) ||
    permissions.includes(`environment.${envId(d)}.${action}`)
  );
}

function slug(branch: string): string {
  return branch
    .trim()
    .replace(/[^a-zA-Z0-9]+/g, ' ')
    .trim()
    .replace(/\s+/g, '-')
    .toLowerCase()
    .slice(0, 80);
}

function encodeCursor(id: string): string {
  return Buffer.from(JSON.stringify({ after: id })).toString('base64url');
}

function decodeCursor(cursor: string): string | undefined {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after?: unknown };
    return typeof v.after === 'string' ? v.after : undefined;
  } catch {
    return undefined;
  }
}

function errorBody(requestId: string, status: number, title: string, detail: string, code: string): unknown {
  return { meta: { requestId }, error: { title, detail, status, type: `${ERR}/${code}` } };
}

/** Answers `status` with Unkey's problem body (`errorBody`). */
function sendProblem(
  res: ServerResponse,
  requestId: string,
  status: number,
  title: string,
  detail: string,
  code: string,
): Handled {
  return send(res, status, errorBody(requestId, status, title, detail, code));
}

function validationError(requestId: string, e: { location: string; message: string }): unknown {
  return {
    meta: { requestId },
    error: {
      title: 'Bad Request',
      detail: e.message,
      status: 400,
      type: `${ERR}/application/invalid_input`,
      errors: [e],
    },
  };
}

const STATUSES = new Set([
  'pending',
  'starting',
  'building',
  'deploying',
  'network',
  'finalizing',
  'ready',
  'failed',
  'skipped',
  'awaiting_approval',
  'stopped',
  'superseded',
  'cancelled',
]);

/** Request body validation per the OpenAPI schema (additionalProperties: false). */
function validate(
  body: unknown,
  shape: Record<string, 'id' | 'string' | 'limit' | 'statuses'>,
  required: readonly string[] = [],
): { location: string; message: string } | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { location: 'body', message: 'expected a JSON object' };
  }
  const b = body as Record<string, unknown>;
  for (const key of required) {
    if (!(key in b)) return { location: `body.${key}`, message: `missing property '${key}'` };
  }
  for (const [key, value] of Object.entries(b)) {
    const kind = shape[key];
    if (kind === undefined)
      return { location: `body.${key}`, message: `additional property '${key}' is not allowed` };
    const ok =
      kind === 'id'
        ? typeof value === 'string' && /^[a-zA-Z0-9_-]{3,255}$/.test(value)
        : kind === 'string'
          ? typeof value === 'string'
          : kind === 'limit'
            ? typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 100
            : Array.isArray(value) &&
              value.length <= 13 &&
              value.every((s) => typeof s === 'string' && STATUSES.has(s));
    if (!ok) return { location: `body.${key}`, message: `invalid value for '${key}'` };
  }
  return undefined;
}

/** Marker returned by every handler once it has answered. */
type Handled = { readonly handled: true };
const HANDLED: Handled = { handled: true };

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Handled {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': status === 429 ? 'application/problem+json' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
  return HANDLED;
}

/**
 * A ManualClock that remembers every sleep, so tests can see the backoff the client chose and drive
 * time forward only while the code under test is parked on a backoff (never on a request timeout).
 */
export class SleepRecordingClock extends ManualClock {
  /** Every requested sleep duration, in order. */
  readonly sleeps: number[] = [];
  private readonly active = new Set<{ readonly at: number; readonly ms: number }>();

  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    const entry = { at: this.now() + ms, ms };
    this.active.add(entry);
    const p = super.sleep(ms, signal);
    p.then(
      () => this.active.delete(entry),
      () => this.active.delete(entry),
    );
    return p;
  }

  /** Sleeps in progress whose requested length differs from `ignoreMs` (e.g. the request timeout). */
  parked(ignoreMs: number): { readonly at: number; readonly ms: number }[] {
    return [...this.active].filter((e) => e.ms !== ignoreMs);
  }

  /**
   * Resolves `promise`, advancing the clock whenever the code under test waits on a backoff (any sleep
   * other than `timeoutMs`). Waits for events with setImmediate; never sleeps in real time.
   */
  async drive<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
    let settled = false;
    promise.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    while (!settled) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const parked = this.parked(timeoutMs);
      if (parked.length > 0) {
        const next = Math.min(...parked.map((e) => e.at));
        await this.advance(Math.max(0, next - this.now()));
      }
    }
    return promise;
  }
}
