/**
 * A stateful fake of the Vercel REST API endpoints Switchyard uses, on 127.0.0.1 (port 0), written from
 * Vercel's published API reference and CLI behaviour: `GET /v9/projects/{idOrName}` (targets.production,
 * autoAssignCustomDomains, lastAliasRequest), `GET /v9/projects/{idOrName}/domains` and
 * `GET /v6/deployments` (timestamp paging: `pagination.next` → `until`), `GET /v13/deployments/{idOrUrl}`,
 * `GET /v4/aliases/{idOrAlias}` (the alias table: where each domain points; 404 `not_found` without one;
 * a single object as the API reference documents it, or the array of one its SDK example shows),
 * `POST /v1/projects/{id}/rollback/{deploymentId}` (201, optional `description` query parameter; the CLI's
 * `/v9` path too) and `POST /v10/projects/{id}/promote/{deploymentId}` (202). A project domain added
 * `verified: false` is listed as such and gets no alias until `verifyDomain` (Vercel: it "will not be used
 * as an alias on this project until the challenge in verification is completed"): no deployment, alias job
 * or auto-assignment points it anywhere. Error bodies are `{ error: { code, message } }`. Bearer tokens
 * are checked (403 `forbidden`),
 * `teamId` scopes every lookup, a rollback/promote starts an alias job (409 while one runs) that finishes
 * after a configurable number of project reads or on command, and faults can be injected (429 with
 * Retry-After, 5xx, hanging requests, bad bodies).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../src/clock.js';
import { LoopbackServer } from './loopback-server.js';

/**
 * Every readyState Vercel's API lists (vercel/sdk `GetDeploymentsReadyState`): BLOCKED is a deployment
 * Vercel holds back (e.g. until the commit author is authorized or its checks pass); DELETED is listed by
 * `GET /v6/deployments` but no longer found by `GET /v13/deployments/{id}`.
 */
export type FakeReadyState =
  | 'QUEUED'
  | 'BUILDING'
  | 'ERROR'
  | 'INITIALIZING'
  | 'READY'
  | 'CANCELED'
  | 'BLOCKED'
  | 'DELETED';
export type FakeJobStatus = 'pending' | 'in-progress' | 'succeeded' | 'failed' | 'skipped';

interface FakeDeployment {
  readonly id: string;
  readonly projectId: string;
  readonly url: string;
  readonly name: string;
  readonly target: 'production' | null;
  readyState: FakeReadyState;
  readonly createdAt: number;
  ready?: number;
  readonly meta: Record<string, string>;
}

interface FakeDomain {
  readonly name: string;
  readonly gitBranch: string | null;
  readonly redirect: string | null;
  readonly customEnvironmentId: string | null;
  readonly createdAt: number;
  /** False while the domain awaits verification: Vercel does not use it as an alias until then. */
  verified: boolean;
}

interface AliasJob {
  fromDeploymentId: string | null;
  toDeploymentId: string;
  jobStatus: FakeJobStatus;
  requestedAt: number;
  type: 'promote' | 'rollback';
  /** The rollback's `description` query parameter, when one was sent (not part of lastAliasRequest). */
  description: string | undefined;
  /** Project reads left before the job finishes (undefined: only `finishAliasJob`). */
  readsLeft: number | undefined;
}

interface FakeProject {
  readonly id: string;
  readonly name: string;
  /** Team id, or undefined for a personal-account project. */
  readonly teamId: string | undefined;
  readonly productionBranch: string;
  autoAssignCustomDomains: boolean;
  production: string | undefined;
  job: AliasJob | undefined;
  readonly domains: FakeDomain[];
  /** The alias table: domain → the deployment it points to (what `GET /v4/aliases/{domain}` reads). */
  readonly aliases: Map<string, string>;
  /** Domains the next production change leaves on their old deployment (`leaveAliasBehind`). */
  readonly stuck: Set<string>;
}

/** A fault answered instead of the real endpoint (consumed in order; `path` narrows it by prefix). */
export type FakeFault =
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly retryAfter?: string;
      /** Extra response headers (e.g. `x-ratelimit-reset`). */
      readonly headers?: Readonly<Record<string, string>>;
      readonly code?: string;
      readonly message?: string;
      readonly method?: 'GET' | 'POST';
      readonly path?: string;
    }
  | { readonly kind: 'hang'; readonly method?: 'GET' | 'POST'; readonly path?: string }
  | {
      readonly kind: 'body';
      readonly status: number;
      readonly body: unknown;
      readonly method?: 'GET' | 'POST';
      readonly path?: string;
    };

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly authorization: string | undefined;
  readonly at: number;
}

export interface VercelFakeOptions {
  readonly clock: Clock;
  /** Token → scopes it may act in: team ids, and `personal` for the token owner's own projects. */
  readonly tokens: Readonly<Record<string, readonly string[]>>;
  /**
   * Project reads (GET /v9/projects/…) after which an alias job finishes: the first read moves it from
   * `pending` to `in-progress`, the n-th to `succeeded`. Undefined: it finishes only on `finishAliasJob`.
   */
  readonly aliasJobReads?: number;
  /**
   * Shape of a `GET /v4/aliases/{idOrAlias}` answer: `object` (default), as Vercel's API reference
   * documents it, or `array`, the array of one shown as the example answer of its SDK reference.
   */
  readonly aliasShape?: 'object' | 'array';
}

type Handled = true;
const HANDLED: Handled = true;

/** The fake Vercel API; create with `VercelFakeServer.start`. */
export class VercelFakeServer {
  readonly requests: RecordedRequest[] = [];
  private readonly projects: FakeProject[] = [];
  private readonly deployments: FakeDeployment[] = [];
  private readonly faults: FakeFault[] = [];
  private readonly waiters: { done: () => boolean; resolve: () => void }[] = [];
  /** A 400 answered by rollback/promote instead of acting (e.g. a plan limit), when set. */
  private refusal: { code: string; message: string } | undefined;
  private seq = 0;
  private http: LoopbackServer | undefined;

  private constructor(private readonly opts: VercelFakeOptions) {}

  static async start(opts: VercelFakeOptions): Promise<VercelFakeServer> {
    const fake = new VercelFakeServer(opts);
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

  /** Creates a project with its `<name>.vercel.app` production domain and any custom domains. */
  addProject(p: {
    name: string;
    teamId?: string;
    productionBranch?: string;
    domains?: readonly {
      name: string;
      gitBranch?: string;
      redirect?: string;
      customEnvironmentId?: string;
      /** False: added but awaiting verification (no alias until `verifyDomain`). Default true. */
      verified?: boolean;
    }[];
  }): string {
    this.seq += 1;
    const id = `prj_${String(this.seq).padStart(6, '0')}${p.name.replace(/[^a-z0-9]/gi, '')}`;
    const now = this.opts.clock.now();
    const domains: FakeDomain[] = [
      {
        name: `${p.name}.vercel.app`,
        gitBranch: null,
        redirect: null,
        customEnvironmentId: null,
        createdAt: now,
        verified: true,
      },
      ...(p.domains ?? []).map((d, i) => ({
        name: d.name,
        gitBranch: d.gitBranch ?? null,
        redirect: d.redirect ?? null,
        customEnvironmentId: d.customEnvironmentId ?? null,
        createdAt: now + i + 1,
        verified: d.verified ?? true,
      })),
    ];
    this.projects.push({
      id,
      name: p.name,
      teamId: p.teamId,
      productionBranch: p.productionBranch ?? 'main',
      autoAssignCustomDomains: true,
      production: undefined,
      job: undefined,
      domains,
      aliases: new Map(),
      stuck: new Set(),
    });
    return id;
  }

  /** Creates a deployment as a git push would; a READY production deployment is auto-assigned. */
  deploy(p: {
    project: string;
    target?: 'production' | 'preview';
    branch?: string;
    readyState?: FakeReadyState;
    message?: string;
    author?: string;
  }): string {
    const project = this.projectById(p.project);
    this.seq += 1;
    const id = `dpl_${String(this.seq).padStart(4, '0')}${'x'.repeat(20)}`;
    const sha = `${this.seq.toString(16).padStart(7, '0')}${'c'.repeat(33)}`;
    // Creation times are strictly increasing, so "newest first" is well defined even within one ms.
    const now = Math.max(this.opts.clock.now(), (this.deployments.at(-1)?.createdAt ?? 0) + 1);
    const target = p.target ?? 'production';
    const d: FakeDeployment = {
      id,
      projectId: project.id,
      name: project.name,
      url: `${project.name}-${id.slice(4, 13).toLowerCase()}.vercel.app`,
      target: target === 'production' ? 'production' : null,
      readyState: p.readyState ?? 'READY',
      createdAt: now,
      meta: {
        githubCommitSha: sha,
        githubCommitRef: p.branch ?? (target === 'production' ? project.productionBranch : 'feature'),
        githubCommitMessage: p.message ?? `commit ${this.seq}`,
        githubCommitAuthorName: p.author ?? 'Ada Lovelace',
        githubCommitAuthorLogin: 'ada',
      },
    };
    this.deployments.push(d);
    if (d.readyState === 'READY') this.becameReady(d);
    return id;
  }

  /** Changes a deployment's readyState (BUILDING → READY auto-assigns like a finished build). */
  setReadyState(id: string, state: FakeReadyState): void {
    const d = this.deployments.find((x) => x.id === id);
    if (!d) throw new Error(`no fake deployment ${id}`);
    d.readyState = state;
    if (state === 'READY') this.becameReady(d);
  }

  /** Finishes the running alias job of a project with `status` (default `succeeded`). */
  finishAliasJob(projectId: string, status: 'succeeded' | 'failed' | 'skipped' = 'succeeded'): void {
    const project = this.projectById(projectId);
    const job = project.job;
    if (!job || (job.jobStatus !== 'pending' && job.jobStatus !== 'in-progress')) {
      throw new Error(`no alias job running for ${projectId}`);
    }
    this.finish(project, job, status);
  }

  /**
   * Completes the verification challenge of a project domain: from now on Vercel uses it as an alias,
   * so it points where its kind of domain points (production: the production deployment; a branch
   * domain: its branch's newest ready deployment).
   */
  verifyDomain(projectId: string, name: string): void {
    const project = this.projectById(projectId);
    const dom = project.domains.find((d) => d.name === name);
    if (!dom) throw new Error(`no fake domain ${name} on ${projectId}`);
    dom.verified = true;
    if (dom.redirect !== null || dom.customEnvironmentId !== null) return;
    if (dom.gitBranch === null) {
      if (project.production !== undefined) project.aliases.set(dom.name, project.production);
      return;
    }
    const newest = this.deployments
      .filter(
        (d) =>
          d.projectId === projectId && d.readyState === 'READY' && d.meta.githubCommitRef === dom.gitBranch,
      )
      .sort((a, b) => b.createdAt - a.createdAt)[0];
    if (newest) project.aliases.set(dom.name, newest.id);
  }

  /** Queues a fault for the next matching request. */
  fault(f: FakeFault, times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push(f);
  }

  /** Makes rollback/promote answer 400 with this Vercel error (undefined clears it). */
  setRefusal(refusal: { code: string; message: string } | undefined): void {
    this.refusal = refusal;
  }

  /** Resolves once a request matching `predicate` has arrived. */
  waitForRequest(predicate: (r: RecordedRequest) => boolean): Promise<void> {
    const done = () => this.requests.some(predicate);
    if (done()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ done, resolve }));
  }

  productionOf(projectId: string): string | undefined {
    return this.projectById(projectId).production;
  }

  isRolledBack(projectId: string): boolean {
    return !this.projectById(projectId).autoAssignCustomDomains;
  }

  jobOf(projectId: string): Readonly<AliasJob> | undefined {
    return this.projectById(projectId).job;
  }

  /** Switch requests (rollback/promote POSTs) received. */
  switchRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST' && /\/(rollback|promote)\//.test(r.path));
  }

  // -- state machine -------------------------------------------------------------------------------

  private projectById(id: string): FakeProject {
    const p = this.projects.find((x) => x.id === id);
    if (!p) throw new Error(`no fake project ${id}`);
    return p;
  }

  private becameReady(d: FakeDeployment): void {
    d.ready = this.opts.clock.now();
    const project = this.projectById(d.projectId);
    // A branch domain follows the newest ready deployment of its branch.
    for (const dom of project.domains) {
      if (!dom.verified) continue;
      if (dom.redirect === null && dom.gitBranch !== null && dom.gitBranch === d.meta.githubCommitRef) {
        project.aliases.set(dom.name, d.id);
      }
    }
    if (d.target !== 'production') return;
    // A rolled-back project does not auto-assign new production deployments.
    if (project.autoAssignCustomDomains) this.setProduction(project, d.id);
  }

  /** Makes `id` the production deployment: every production domain's alias moves to it (unless stuck). */
  private setProduction(project: FakeProject, id: string): void {
    project.production = id;
    for (const dom of project.domains) {
      if (dom.redirect !== null || dom.gitBranch !== null || dom.customEnvironmentId !== null) continue;
      // An unverified domain is not used as an alias until its verification challenge is completed.
      if (!dom.verified) continue;
      if (project.stuck.delete(dom.name)) continue;
      project.aliases.set(dom.name, id);
    }
  }

  /**
   * Makes the next production change (auto-assignment or alias job) leave `domain` on the deployment it
   * points to now, as a partly failed alias job would: the project's `targets.production` still moves.
   */
  leaveAliasBehind(projectId: string, domain: string): void {
    this.projectById(projectId).stuck.add(domain);
  }

  private running(project: FakeProject): boolean {
    return project.job?.jobStatus === 'pending' || project.job?.jobStatus === 'in-progress';
  }

  private finish(project: FakeProject, job: AliasJob, status: 'succeeded' | 'failed' | 'skipped'): void {
    job.jobStatus = status;
    if (status !== 'succeeded') return;
    this.setProduction(project, job.toDeploymentId);
    project.autoAssignCustomDomains = job.type === 'promote';
  }

  /** A project read advances its alias job (the fake's notion of time passing for the job). */
  private advanceJob(project: FakeProject): void {
    const job = project.job;
    if (!job || !this.running(project)) return;
    if (job.readsLeft !== undefined) {
      job.readsLeft -= 1;
      if (job.readsLeft <= 0) {
        this.finish(project, job, 'succeeded');
        return;
      }
    }
    job.jobStatus = 'in-progress';
  }

  private projectWire(p: FakeProject): Record<string, unknown> {
    const production =
      p.production === undefined ? undefined : this.deployments.find((d) => d.id === p.production);
    return {
      accountId: p.teamId ?? 'user_personal',
      id: p.id,
      name: p.name,
      framework: 'nextjs',
      autoAssignCustomDomains: p.autoAssignCustomDomains,
      link: { type: 'github', repo: p.name, org: 'acme', productionBranch: p.productionBranch },
      targets:
        production === undefined
          ? {}
          : {
              production: {
                id: production.id,
                url: production.url,
                readyState: production.readyState,
                target: 'production',
                createdAt: production.createdAt,
                meta: production.meta,
                alias: p.domains.filter((d) => d.verified).map((d) => d.name),
              },
            },
      ...(p.job === undefined
        ? {}
        : {
            lastAliasRequest: {
              fromDeploymentId: p.job.fromDeploymentId,
              toDeploymentId: p.job.toDeploymentId,
              jobStatus: p.job.jobStatus,
              requestedAt: p.job.requestedAt,
              type: p.job.type,
            },
          }),
      updatedAt: this.opts.clock.now(),
    };
  }

  private deploymentWire(d: FakeDeployment, shape: 'list' | 'get'): Record<string, unknown> {
    const common = {
      name: d.name,
      url: d.url,
      target: d.target,
      projectId: d.projectId,
      meta: d.meta,
      readyState: d.readyState,
      ...(d.ready === undefined ? {} : { ready: d.ready }),
      createdAt: d.createdAt,
      creator: { uid: 'user_ada', username: 'ada' },
      source: 'git',
    };
    if (shape === 'list')
      return { uid: d.id, created: d.createdAt, state: d.readyState, type: 'LAMBDAS', ...common };
    return { id: d.id, version: 2, type: 'LAMBDAS', regions: ['iad1'], ...common };
  }

  // -- HTTP ------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<Handled> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const parsedUrl = new URL(req.url ?? '/', 'http://fake');
    const path = parsedUrl.pathname;
    const query = Object.fromEntries(parsedUrl.searchParams.entries());
    const method = req.method ?? 'GET';
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = text;
    }
    this.requests.push({
      method,
      path,
      query,
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

    const faultIndex = this.faults.findIndex(
      (f) =>
        (f.method === undefined || f.method === method) && (f.path === undefined || path.startsWith(f.path)),
    );
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
          const headers: Record<string, string> = {
            ...fault.headers,
            ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
          };
          const code =
            fault.code ??
            (fault.status === 429
              ? 'rate_limited'
              : fault.status >= 500
                ? 'internal_server_error'
                : 'bad_request');
          return send(
            res,
            fault.status,
            { error: { code, message: fault.message ?? `fault ${fault.status}` } },
            headers,
          );
        }
      }
    }

    // Auth: Vercel answers 403 forbidden for a missing or invalid token.
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
    const scopes = token === undefined ? undefined : this.opts.tokens[token];
    if (scopes === undefined) {
      return send(res, 403, { error: { code: 'forbidden', message: 'Not authorized', invalidToken: true } });
    }
    const teamId = query.teamId;
    if (teamId !== undefined && !scopes.includes(teamId)) {
      return send(res, 403, {
        error: { code: 'forbidden', message: `You don't have permission to access the team ${teamId}.` },
      });
    }
    if (teamId === undefined && !scopes.includes('personal')) {
      return send(res, 403, { error: { code: 'forbidden', message: 'Not authorized' } });
    }
    const inScope = (p: FakeProject) => p.teamId === teamId;
    const findProject = (idOrName: string) =>
      this.projects.find((p) => inScope(p) && (p.id === idOrName || p.name === idOrName));
    const notFound = (message: string) => send(res, 404, { error: { code: 'not_found', message } });

    const projectPath = method === 'GET' ? /^\/v9\/projects\/([^/]+)$/.exec(path) : null;
    const domainsPath = method === 'GET' ? /^\/v9\/projects\/([^/]+)\/domains$/.exec(path) : null;
    const deploymentPath = method === 'GET' ? /^\/v13\/deployments\/([^/]+)$/.exec(path) : null;
    const switchPath =
      method === 'POST' ? /^\/(v1|v9|v10)\/projects\/([^/]+)\/(rollback|promote)\/([^/]+)$/.exec(path) : null;
    if (projectPath) {
      const project = findProject(decodeURIComponent(projectPath[1] ?? ''));
      if (!project) return notFound('Project not found');
      this.advanceJob(project);
      return send(res, 200, this.projectWire(project));
    }
    if (domainsPath) {
      const project = findProject(decodeURIComponent(domainsPath[1] ?? ''));
      if (!project) return notFound('Project not found');
      const limit = Math.min(100, Number(query.limit ?? '20') || 20);
      const until = query.until === undefined ? undefined : Number(query.until);
      const all = [...project.domains]
        .sort((a, b) => b.createdAt - a.createdAt)
        .filter((d) => until === undefined || d.createdAt < until);
      const page = all.slice(0, limit);
      const last = page[page.length - 1];
      return send(res, 200, {
        domains: page.map((d) => ({
          name: d.name,
          apexName: d.name.split('.').slice(-2).join('.'),
          projectId: project.id,
          redirect: d.redirect,
          redirectStatusCode: d.redirect === null ? null : 308,
          gitBranch: d.gitBranch,
          customEnvironmentId: d.customEnvironmentId,
          updatedAt: d.createdAt,
          createdAt: d.createdAt,
          verified: d.verified,
          ...(d.verified
            ? {}
            : {
                verification: [
                  {
                    type: 'TXT',
                    domain: `_vercel.${d.name.split('.').slice(-2).join('.')}`,
                    value: `vc-domain-verify=${d.name},${project.id}`,
                    reason: 'pending_domain_verification',
                  },
                ],
              }),
        })),
        pagination: {
          count: page.length,
          next: all.length > limit && last ? last.createdAt : null,
          prev: null,
        },
      });
    }
    const aliasPath = method === 'GET' ? /^\/v4\/aliases\/([^/]+)$/.exec(path) : null;
    if (aliasPath) {
      const name = decodeURIComponent(aliasPath[1] ?? '');
      const owner = this.projects.find(
        (p) =>
          inScope(p) && (query.projectId === undefined || p.id === query.projectId) && p.aliases.has(name),
      );
      const deploymentId = owner?.aliases.get(name);
      if (!owner || deploymentId === undefined) {
        return send(res, 404, { error: { code: 'not_found', message: 'The alias was not found' } });
      }
      const alias = {
        alias: name,
        uid: `alias_${Buffer.from(name).toString('hex').slice(0, 20)}`,
        created: new Date(this.opts.clock.now()).toISOString(),
        createdAt: this.opts.clock.now(),
        deploymentId,
        projectId: owner.id,
        redirect: null,
      };
      return send(res, 200, this.opts.aliasShape === 'array' ? [alias] : alias);
    }
    if (method === 'GET' && path === '/v6/deployments') {
      const limit = Math.min(100, Number(query.limit ?? '20') || 20);
      const until = query.until === undefined ? undefined : Number(query.until);
      const project = query.projectId === undefined ? undefined : findProject(query.projectId);
      if (query.projectId !== undefined && !project) return notFound('Project not found');
      const all = this.deployments
        .filter((d) => {
          const p = this.projects.find((x) => x.id === d.projectId);
          if (!p || !inScope(p)) return false;
          if (project && d.projectId !== project.id) return false;
          if (query.target === 'production' && d.target !== 'production') return false;
          if (query.target === 'preview' && d.target !== null) return false;
          if (query.state !== undefined && !query.state.split(',').includes(d.readyState)) return false;
          return until === undefined || d.createdAt < until;
        })
        .sort((a, b) => b.createdAt - a.createdAt);
      const page = all.slice(0, limit);
      const last = page[page.length - 1];
      return send(res, 200, {
        pagination: {
          count: page.length,
          next: all.length > limit && last ? last.createdAt : null,
          prev: null,
        },
        deployments: page.map((d) => this.deploymentWire(d, 'list')),
      });
    }
    if (deploymentPath) {
      const idOrUrl = decodeURIComponent(deploymentPath[1] ?? '');
      const d = this.deployments.find((x) => {
        const p = this.projects.find((y) => y.id === x.projectId);
        return p !== undefined && inScope(p) && (x.id === idOrUrl || x.url === idOrUrl);
      });
      // A deleted deployment is still listed (state DELETED) but no longer found on its own.
      if (!d || d.readyState === 'DELETED') return notFound('The deployment was not found.');
      return send(res, 200, this.deploymentWire(d, 'get'));
    }
    if (switchPath) {
      const [, version, projectRef, action, deploymentId] = switchPath;
      // Rollback: /v1 (Vercel's API reference) or /v9 (the CLI); promote: /v10.
      if (action === 'rollback' ? version === 'v10' : version !== 'v10') return notFound('Not found');
      const project = findProject(decodeURIComponent(projectRef ?? ''));
      if (!project) return notFound('Project not found');
      const d = this.deployments.find((x) => x.id === deploymentId && x.projectId === project.id);
      if (!d || d.readyState === 'DELETED') return notFound('The deployment was not found.');
      if (this.running(project)) {
        return send(res, 409, {
          error: {
            code: 'conflict',
            message: 'A rollback or promote is already in progress for this project. Please try again later.',
          },
        });
      }
      if (this.refusal) return send(res, 400, { error: this.refusal });
      if (d.readyState !== 'READY') {
        return send(res, 400, {
          error: { code: 'bad_request', message: `Deployment ${d.id} is not ready (${d.readyState}).` },
        });
      }
      if (action === 'rollback' && d.target !== 'production') {
        return send(res, 400, {
          error: { code: 'bad_request', message: 'Only production deployments can be rolled back to.' },
        });
      }
      project.job = {
        fromDeploymentId: project.production ?? null,
        toDeploymentId: d.id,
        jobStatus: 'pending',
        requestedAt: this.opts.clock.now(),
        type: action === 'rollback' ? 'rollback' : 'promote',
        description: action === 'rollback' ? query.description : undefined,
        readsLeft: this.opts.aliasJobReads,
      };
      res.writeHead(action === 'rollback' ? 201 : 202);
      res.end();
      return HANDLED;
    }
    return notFound(`No route for ${method} ${path}`);
  }
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Handled {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(text);
  return HANDLED;
}
