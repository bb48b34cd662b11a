/**
 * Seeded random mutations of real valid inputs at every zod edge (DESIGN.md: "Every input from outside …
 * is parsed with zod at the edge. Bad input gets a clear message naming the field and what was
 * expected; it never crashes the process, and a refused action changes nothing.").
 *
 * Each edge starts from inputs the other tests already use (the alert fixtures, the fake Slack's
 * payloads, button ids the views encode, the README's config, the documented env vars, the Unkey and
 * Vercel fakes' answers, a switch job's data) and applies 1-2 seeded mutations: a field dropped, set to
 * null, to a value of another type, to a huge string, to deep nesting, to odd unicode, to a NaN-like
 * string, to a negative or huge number; an extra key (`__proto__` among them), an array item
 * duplicated or swapped for another type, a string truncated. Then:
 * - the parser answers or refuses the way it documents (a refusal value, or its one error type), never
 *   anything else (a raw TypeError or RangeError);
 * - a refusal names a field the mutation touched (a key of its path, or the variable) and says what was
 *   expected, in a message of bounded length (no echo of a 200 KB value, no line per item of a huge list);
 * - the unmutated inputs parse.
 * Alert webhooks also go through the real HTTP server: a refused body is a 400 naming the field (never
 * a 500) and changes nothing (no plan, no post).
 *
 * A failure prints the edge, the seed, the case number and the mutations: RANDOM_SEED=<n> replays.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { blockActionSchema, describeIssues, slashCommandSchema } from '../handlers/slack/context.js';
import { registerAlertWebhooks } from '../handlers/webhooks/alerts.js';
import { parseAlertDelivery } from '../src/alerts/parsers.js';
import type { AlertSource } from '../src/alerts/types.js';
import { parseConfigFile, parseEnv } from '../src/config.js';
import { ConfigError, PlatformHttpError } from '../src/errors.js';
import { HttpServer } from '../src/http.js';
import { UnkeyClient } from '../src/platform/unkey/client.js';
import {
  GetDeploymentResponseSchema as UnkeyGetDeployment,
  ListDeploymentsResponseSchema as UnkeyListDeployments,
} from '../src/platform/unkey/schemas.js';
import { VercelClient } from '../src/platform/vercel/client.js';
import {
  GetDeploymentResponseSchema as VercelGetDeployment,
  ListDeploymentsResponseSchema as VercelListDeployments,
  ProjectSchema as VercelProject,
} from '../src/platform/vercel/schemas.js';
import { jobDataIssues, switchJobSchema } from '../src/queue.js';
import { encodeAction, parseAction } from '../src/views/actions.js';
import { createHarness, type Harness } from './alerts/helpers.js';
import { SlackRequests } from './fakes/slack/requests.js';
import type { FakeSlack } from './fakes/slack/server.js';
import { SleepRecordingClock, UnkeyFakeServer } from './fakes/unkey-server.js';
import { VercelFakeServer } from './fakes/vercel-server.js';
import { mulberry32 } from './support/random.js';

const SEED = Number(process.env.RANDOM_SEED ?? 20_240_517);
const CASES = 200;
/** The longest refusal message any edge may give, whatever the input's size. */
const MAX_MESSAGE = 3_000;

// ------------------------------------------------------------------------------------ mutations

type Path = (string | number)[];
interface Mutation {
  readonly kind: string;
  readonly path: Path;
}
type Json = unknown;

const UNICODE = ['💥', 'é\u0301', '\u202eevil', '日本語', '\u0000', '\ud800', 'a\u200bb', '\ufeff'];
const NAN_LIKE = ['NaN', 'Infinity', '-Infinity', '1e999', '0x1F', ' 7 ', '-0', 'undefined', 'null', '1_000'];
const NUMBERS = [-1, -0, 0, 1.5, -1e308, 1e308, 2 ** 53 + 2, Number.NaN, Number.POSITIVE_INFINITY];
const EXTRA_KEYS = ['extra', '__proto__', 'constructor', 'toString', 'k'.repeat(5_000), '💥'];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

function nested(depth: number): Json {
  let v: Json = [];
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
  return v;
}

/** Every path inside `value` (not the root), at most `maxDepth` keys long. */
function pathsOf(value: Json, maxDepth = 8, path: Path = [], out: Path[] = []): Path[] {
  if (path.length >= maxDepth || value === null || typeof value !== 'object') return out;
  const entries: [string | number, Json][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value as Record<string, Json>);
  for (const [k, v] of entries) {
    const p = [...path, k];
    out.push(p);
    pathsOf(v, maxDepth, p, out);
  }
  return out;
}

function at(root: Json, path: Path): Json {
  let cur = root;
  for (const k of path) cur = (cur as Record<string | number, Json>)[k];
  return cur;
}

/** A value of another JSON type than `v`. */
function otherType(rand: () => number, v: Json): Json {
  const options: Json[] = [42, 'text', true, {}, [], [1, 'two'], { nested: { deep: 1 } }];
  const differs = options.filter(
    (o) => typeof o !== typeof v || Array.isArray(o) !== Array.isArray(v) || (v === null) !== (o === null),
  );
  return pick(rand, differs);
}

interface MutateOptions {
  /** Only string values and top-level keys (env vars). */
  readonly stringsOnly?: boolean;
  /** Depth of the nesting mutation. */
  readonly nestDepth?: number;
  /** Length of the huge string and of the huge list (smaller where the input is YAML text). */
  readonly hugeSize?: number;
}

/** One mutation of `root` (mutated in place); undefined when the chosen one does not apply there. */
function mutateOnce(rand: () => number, root: Json, opts: MutateOptions): Mutation | undefined {
  const paths = pathsOf(root);
  if (paths.length === 0) return undefined;
  const path = pick(rand, paths);
  const parent = at(root, path.slice(0, -1)) as Record<string | number, Json>;
  const key = path[path.length - 1] as string | number;
  const current = parent[key];
  const set = (v: Json) => {
    parent[key] = v;
  };
  const kinds = opts.stringsOnly
    ? ['drop', 'huge', 'unicode', 'nanLike', 'number', 'truncate', 'extra', 'empty']
    : [
        'drop',
        'null',
        'wrongType',
        'huge',
        'hugeList',
        'deep',
        'unicode',
        'nanLike',
        'number',
        'extra',
        'dupItem',
        'truncate',
        'swapItem',
      ];
  const kind = pick(rand, kinds);
  switch (kind) {
    case 'drop':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      return { kind, path };
    case 'null':
      set(null);
      return { kind, path };
    case 'wrongType':
      set(otherType(rand, current));
      return { kind, path };
    case 'huge': {
      const size = opts.hugeSize ?? 200_000;
      const unit = typeof current === 'string' && current !== '' ? current : 'x';
      set(unit.repeat(Math.ceil(size / unit.length)).slice(0, size));
      return { kind, path };
    }
    case 'hugeList':
      set(Array.from({ length: (opts.hugeSize ?? 200_000) / 40 }, (_, i) => (i % 2 === 0 ? i : { i })));
      return { kind, path };
    case 'deep':
      set(nested(opts.nestDepth ?? 2_000));
      return { kind, path };
    case 'unicode': {
      const u = pick(rand, UNICODE);
      set(typeof current === 'string' && rand() < 0.5 ? `${current}${u}` : u);
      return { kind, path };
    }
    case 'nanLike':
      set(pick(rand, NAN_LIKE));
      return { kind, path };
    case 'number': {
      const n = pick(rand, NUMBERS);
      set(opts.stringsOnly ? String(n) : n);
      return { kind, path };
    }
    case 'empty':
      set(' ');
      return { kind, path };
    case 'extra': {
      // Into the object at `path` when it is one, else beside it.
      const target =
        current !== null && typeof current === 'object' && !Array.isArray(current) && !opts.stringsOnly
          ? { obj: current as Record<string, Json>, base: path }
          : Array.isArray(parent)
            ? undefined
            : { obj: parent, base: path.slice(0, -1) };
      if (target === undefined) return undefined;
      const extra = opts.stringsOnly
        ? `SWITCHYARD_${pick(rand, ['EXTRA', 'PORTT', 'X'])}`
        : pick(rand, EXTRA_KEYS);
      // An own `__proto__` key, as JSON.parse makes it.
      Object.defineProperty(target.obj, extra, {
        value: opts.stringsOnly ? 'on' : otherType(rand, undefined),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      return { kind, path: [...target.base, extra] };
    }
    case 'dupItem':
      if (!Array.isArray(current) || current.length === 0) return undefined;
      current.push(structuredClone(current[0]));
      return { kind, path: [...path, current.length - 1] };
    case 'truncate':
      if (typeof current !== 'string' || current.length === 0) return undefined;
      set(current.slice(0, Math.floor(rand() * current.length)));
      return { kind, path };
    case 'swapItem': {
      if (!Array.isArray(current) || current.length === 0) return undefined;
      const i = Math.floor(rand() * current.length);
      current[i] = otherType(rand, current[i]);
      return { kind, path: [...path, i] };
    }
    default:
      throw new Error(`unknown mutation ${kind}`);
  }
}

/** A mutated copy of `valid` (1-2 mutations that apply) and what was done. */
function mutate(rand: () => number, valid: Json, opts: MutateOptions = {}) {
  const value = structuredClone(valid);
  const mutations: Mutation[] = [];
  const wanted = rand() < 0.7 ? 1 : 2;
  for (let tries = 0; mutations.length < wanted && tries < 20; tries++) {
    const m = mutateOnce(rand, value, opts);
    if (m) mutations.push(m);
  }
  return { value, mutations };
}

/** How a failure shows the mutations (values are not shown: some are 200 KB). */
function shownMutations(mutations: readonly Mutation[]): string {
  return mutations
    .map((m) => `${m.kind} at ${m.path.map((k) => String(k).slice(0, 40)).join('.') || '(root)'}`)
    .join(', ');
}

/** Root markers the edges use for a problem with the whole value. */
const ROOT = /\(root\)|\(payload\)|\(job\)|\(body\)|\[\d+\]/;

/**
 * Whether `message` names a field one of the mutations touched: a key of its path (its first 30 characters: the
 * messages clip a sender's keys), or a root marker when its path has no keys (an item of a top-level list).
 */
function namesField(message: string, mutations: readonly Mutation[]): boolean {
  return mutations.some((m) => {
    const keys = m.path.filter((k): k is string => typeof k === 'string');
    if (keys.length === 0) return ROOT.test(message);
    return keys.some((k) => message.includes(k.slice(0, 30)));
  });
}

const SAYS_EXPECTED = /expect|required|unknown key/i;

/**
 * Runs `CASES` mutations of `inputs` through `check`, which answers the refusal message (or undefined
 * when the input was accepted) and throws when the parser broke its contract. Every refusal must name a
 * touched field and what was expected, within MAX_MESSAGE characters.
 */
async function fuzz(
  edge: string,
  seed: number,
  inputs: readonly Json[],
  check: (value: Json, index: number) => string | undefined | Promise<string | undefined>,
  opts: MutateOptions & { readonly cases?: number; readonly expected?: RegExp } = {},
): Promise<{ refused: number; accepted: number }> {
  const rand = mulberry32(seed);
  let refused = 0;
  let accepted = 0;
  for (const [i, input] of inputs.entries()) {
    const message = await check(structuredClone(input), i);
    if (message !== undefined) throw new Error(`${edge}: unmutated input #${i} refused: ${message}`);
  }
  for (let n = 0; n < (opts.cases ?? CASES); n++) {
    const index = Math.floor(rand() * inputs.length);
    const { value, mutations } = mutate(rand, inputs[index], opts);
    const where = `${edge} seed ${seed} case ${n} (input #${index}; ${shownMutations(mutations)})`;
    let message: string | undefined;
    try {
      message = await check(value, index);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).stack ?? String(e)}`);
    }
    if (message === undefined) {
      accepted++;
      continue;
    }
    refused++;
    if (!namesField(message, mutations))
      throw new Error(`${where}: refusal names no touched field: ${message}`);
    if (!(opts.expected ?? SAYS_EXPECTED).test(message))
      throw new Error(`${where}: refusal does not say what was expected: ${message.slice(0, 500)}`);
    if (message.length > MAX_MESSAGE)
      throw new Error(`${where}: refusal of ${message.length} characters: ${message.slice(0, 300)}…`);
  }
  return { refused, accepted };
}

/** Whether `f` threw `type` (its message), returned (undefined), or threw something else (rethrown). */
function refusalOf(type: new (...args: never[]) => Error, f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    if (e instanceof type) return e.message;
    throw e;
  }
}

/** Seeds per edge: one base seed, offset per edge so each has its own stream. */
const seedOf = (n: number) => (SEED + n * 7_919) >>> 0;

// ------------------------------------------------------------------------------------ inputs

const fixtureDir = join(import.meta.dirname, 'fixtures/alerts');
const fixture = (name: string): Json => JSON.parse(readFileSync(join(fixtureDir, name), 'utf8'));

/** Real deliveries per source (the vendor fixtures), with the Sentry-Hook-Resource each comes with. */
const ALERT_INPUTS: Readonly<Record<AlertSource, readonly (readonly [string, string | undefined])[]>> = {
  alertmanager: [
    ['alertmanager-firing.json', undefined],
    ['alertmanager-grouped.json', undefined],
    ['alertmanager-resolved.json', undefined],
  ],
  grafana: [
    ['grafana-firing.json', undefined],
    ['grafana-datasource-error.json', undefined],
    ['grafana-spanning-environments.json', undefined],
  ],
  datadog: [
    ['datadog-triggered.json', undefined],
    ['datadog-default-triggered.json', undefined],
    ['datadog-default-recovered.json', undefined],
  ],
  sentry: [
    ['sentry-issue-alert.json', 'event_alert'],
    ['sentry-metric-critical.json', 'metric_alert'],
    ['sentry-issue-resolved.json', 'issue'],
  ],
  pagerduty: [
    ['pagerduty-triggered.json', undefined],
    ['pagerduty-resolved.json', undefined],
  ],
  generic: [
    ['generic-firing.json', undefined],
    ['generic-grouped.json', undefined],
  ],
};
const SOURCES = Object.keys(ALERT_INPUTS) as AlertSource[];
const NOW = Date.parse('2024-05-17T12:00:00Z');

function alertRefusal(source: AlertSource, body: Json, resource: string | undefined): string | undefined {
  const r = parseAlertDelivery(source, body, { now: NOW, sentryResource: resource });
  if (r.ok) return undefined;
  if (r.refusal.code !== 'invalid_input')
    throw new Error(`refused with ${r.refusal.code}: ${r.refusal.message}`);
  return r.refusal.message;
}

/** The fake Slack the payload builders read (only its ids and response URLs). */
const fakeSlack = {
  teamId: 'T0FAKE',
  botUserId: 'U0BOT',
  botId: 'B0BOT',
  channels: new Map([['C0PROD', 'incidents']]),
  createResponseUrl: () => 'http://127.0.0.1:9/response/1',
  message: () => undefined,
} as unknown as FakeSlack;
const slackRequests = new SlackRequests('http://127.0.0.1:9/slack/events', 'secret', fakeSlack);

const PLAN = 'plan_0123abcd4567ef89';
const ACTION_IDS = [
  encodeAction({ kind: 'confirm', ref: PLAN }),
  encodeAction({ kind: 'cancel', ref: PLAN }),
  encodeAction({ kind: 'approve', ref: PLAN }),
  encodeAction({ kind: 'dismiss', ref: PLAN }),
  encodeAction({ kind: 'replan', ref: PLAN }),
  encodeAction({ kind: 'rollback_to', ref: { environment: 'production', deploymentId: 'dep_3hd7xa' } }),
  encodeAction({ kind: 'promote', ref: { environment: 'preview', deploymentId: 'dpl_8f3kQ2.v1-a' } }),
];

/** The env vars the docs show (README, docs/slack.md, docs/discord.md, docs/unkey.md, docs/vercel.md). */
const ENVS: Record<string, string>[] = [
  {
    PORT: '3000',
    HOST: '0.0.0.0',
    REDIS_URL: 'rediss+cluster://switchyard:s3cret@10.0.0.11:6379,10.0.0.12:6379,10.0.0.13:6379',
    SWITCHYARD_CONFIG: '/etc/switchyard.yml',
    LOG_LEVEL: 'info',
    SLACK_BOT_TOKEN: 'xoxb-1234-5678-abcdefghijklmnop',
    SLACK_SIGNING_SECRET: '8f14e45fceea167a5a36dedd4bea2543',
    DISCORD_TOKEN: 'MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB',
    DISCORD_APPLICATION_ID: '123456789012345678',
    ALERT_WEBHOOK_SECRET: 'whsec_0123456789abcdef',
  },
  {
    PLATFORM: 'unkey',
    UNKEY_ROOT_KEY: 'unkey_3ZabcdefRootKey0123456789',
    UNKEY_API_URL: 'https://api.unkey.com',
    SWITCHYARD_CONSOLE: 'off',
    SWITCHYARD_WORKER: 'off',
  },
  {
    PLATFORM: 'vercel',
    VERCEL_TOKEN: 'vcp_0123456789abcdef',
    VERCEL_TEAM_ID: 'team_acme123',
    VERCEL_PROJECT: 'my-app',
    VERCEL_API_URL: 'https://api.vercel.com',
    LOCAL_ROUTER_PORT: '8081',
  },
];

const README_CONFIG = (() => {
  const readme = readFileSync(join(import.meta.dirname, '../README.md'), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  if (block === undefined) throw new Error('README.md has no yaml block');
  return block;
})();

const ACTOR = { surface: 'slack', userId: 'U0ALICE', displayName: 'alice' } as const;
/** A switch job's data as switchJobFromPlan makes it (test/jobs/fixtures/harness.ts `jobData`), fields filled. */
const JOB_DATA = [
  {
    action: 'rollback',
    planId: PLAN,
    projectId: 'proj_1',
    environment: 'production',
    targetId: 'dep_3hd7xa',
    expectedCurrent: 'dep_4kq9wz',
    expectedRolledBack: false,
    domains: ['shop.acme.com', '*.acme.com'],
    requestedBy: ACTOR,
    approvedBy: { surface: 'discord', userId: '123456789012345678', displayName: 'Bob', username: 'bob' },
    grants: { requestedBy: { groups: ['S0ONCALL'] }, approvedBy: { roles: ['223456789012345678'] } },
    messages: [
      { surface: 'slack', channel: 'C0PROD', messageId: '1715947200.000100', threadId: '1715947100.000100' },
      { surface: 'console', channel: 'console', messageId: 'm_1' },
    ],
    requestedAt: NOW,
    requestId: 'g1:r2',
  },
  {
    action: 'promote',
    planId: 'plan_89abcdef',
    projectId: 'prj_acme',
    environment: 'preview',
    targetId: 'dpl_8f3k',
    expectedCurrent: 'dpl_7a2b',
    expectedRolledBack: true,
    domains: [],
    requestedBy: ACTOR,
    messages: [],
    requestedAt: 0,
  },
];

// ------------------------------------------------------------------------------------ tests

describe('zod edges under seeded random mutations of real inputs', () => {
  it('alert webhook parsers: every mutated delivery is parsed or refused naming the field', async () => {
    for (const [n, source] of SOURCES.entries()) {
      const inputs = ALERT_INPUTS[source];
      const bodies = inputs.map(([name]) => fixture(name));
      const counts = await fuzz(`alerts/${source}`, seedOf(n), bodies, (body, i) =>
        alertRefusal(source, body, inputs[i]?.[1]),
      );
      expect(counts.refused, `alerts/${source} refused some`).toBeGreaterThan(20);
    }
  });

  it('Slack slash commands and block_actions: refused naming the field', async () => {
    const commands = [
      slackRequests.slashCommandPayload({ command: '/rollback', text: 'production' }).payload,
      slackRequests.slashCommandPayload({ command: '/promote', text: 'preview dpl_1', channelId: 'D0DM' })
        .payload,
      slackRequests.slashCommandPayload({ command: '/switchyard', text: '' }).payload,
    ];
    const clicks = ACTION_IDS.slice(0, 3).map(
      (actionId) => slackRequests.blockActionPayload({ actionId, messageTs: '1715947200.000100' }).payload,
    );
    for (const [schema, inputs, edge, n] of [
      [slashCommandSchema, commands, 'slack/command', 10],
      [blockActionSchema, clicks, 'slack/block_actions', 11],
    ] as const) {
      const counts = await fuzz(edge, seedOf(n), inputs, (value) => {
        const r = schema.safeParse(value);
        return r.success ? undefined : describeIssues(r.error);
      });
      expect(counts.refused).toBeGreaterThan(20);
    }
  });

  it('button ids (parseAction): refused with invalid_input naming action_id, never thrown', async () => {
    // A button id is one string: mutations of the id itself, and of its parts as a list.
    const counts = await fuzz(
      'parseAction',
      seedOf(20),
      ACTION_IDS.map((id) => ({ action_id: id.split(':') })),
      (value) => {
        const parts = (value as { action_id?: unknown }).action_id;
        const id = Array.isArray(parts) ? parts.map(String).join(':') : parts;
        const r = parseAction(id);
        if (r.ok) return undefined;
        if (r.refusal.code !== 'invalid_input' || r.refusal.context?.field !== 'action_id')
          throw new Error(`refusal ${JSON.stringify(r.refusal).slice(0, 300)}`);
        return `action_id: ${r.refusal.message}`;
      },
    );
    expect(counts.refused).toBeGreaterThan(50);
    // Values of other types than a string, as a platform could send them.
    for (const v of [null, undefined, 42, {}, [], nested(5_000), Number.NaN, true]) {
      const r = parseAction(v);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.refusal.message).toMatch(/expected a string/);
    }
  });

  it('env vars (parseEnv): only a ConfigError naming the variable', async () => {
    const counts = await fuzz(
      'parseEnv',
      seedOf(30),
      ENVS,
      (env) => refusalOf(ConfigError, () => parseEnv(env as Record<string, string>)),
      { stringsOnly: true },
    );
    expect(counts.refused).toBeGreaterThan(20);
  });

  it('the config file (parseConfigFile): only a ConfigError naming the key', async () => {
    const valid = parseConfigFile(README_CONFIG, 'README.md');
    expect(valid).toBeDefined();
    // The README's YAML as data, mutated, written back as YAML.
    const { parse } = await import('yaml');
    const counts = await fuzz(
      'config file',
      seedOf(40),
      [parse(README_CONFIG) as Json],
      (value) => {
        const text = toYaml(value, { aliasDuplicateObjects: false });
        return refusalOf(ConfigError, () => parseConfigFile(text, 'sy.yml'));
      },
      { nestDepth: 200, hugeSize: 40_000 },
    );
    expect(counts.refused).toBeGreaterThan(50);
    // The text itself cut anywhere: a ConfigError (not valid YAML, or a key refused), never a crash.
    const rand = mulberry32(seedOf(41));
    for (let n = 0; n < 50; n++) {
      const cut = README_CONFIG.slice(0, Math.floor(rand() * README_CONFIG.length));
      const message = refusalOf(ConfigError, () => parseConfigFile(cut, 'sy.yml'));
      if (message !== undefined) expect(message.length, `cut at ${cut.length}`).toBeLessThan(MAX_MESSAGE);
    }
  });

  it('switch job data (switchJobSchema, jobDataIssues): refused naming the field', async () => {
    const counts = await fuzz('job data', seedOf(50), JOB_DATA, (data) => {
      const r = switchJobSchema.safeParse(data);
      return r.success ? undefined : jobDataIssues(r.error, data);
    });
    expect(counts.refused).toBeGreaterThan(50);
  });

  describe('platform answers (Unkey, Vercel): only a PlatformHttpError naming the response field', () => {
    const KEY = 'unkey_3ZedgesRandomRootKey0123456789';
    const TOKEN = 'vcp_edgesRandomToken0123456789abcdef';
    const TEAM = 'team_acme123';
    const clock = new SleepRecordingClock();
    let unkey: UnkeyFakeServer;
    let vercel: VercelFakeServer;

    beforeAll(async () => {
      unkey = await UnkeyFakeServer.start({ clock, rootKeys: { [KEY]: ['environment.*.read_deployment'] } });
      vercel = await VercelFakeServer.start({ clock, tokens: { [TOKEN]: [TEAM] } });
    });
    afterAll(async () => {
      await unkey.close();
      await vercel.close();
    });

    /** A fetch answering `text` (a 200), as the platform would. */
    const answering = (text: string) =>
      (async () =>
        new Response(text, { status: 200, headers: { 'content-type': 'application/json' } })) as typeof fetch;
    /** The body the real fake answered to the client's request. */
    async function recorded(call: (f: typeof fetch) => Promise<unknown>): Promise<Json> {
      let body: string | undefined;
      await call((async (input: string | URL | Request, init?: RequestInit) => {
        const res = await fetch(input, init);
        body = await res.text();
        return new Response(body, { status: res.status, headers: res.headers });
      }) as typeof fetch);
      return JSON.parse(body ?? 'null');
    }
    const unkeyClient = (f: typeof fetch) =>
      new UnkeyClient({ baseUrl: unkey.url, rootKey: KEY, clock, fetch: f, maxRetries: 0 });
    const vercelClient = (f: typeof fetch) =>
      new VercelClient({ baseUrl: vercel.url, token: TOKEN, teamId: TEAM, clock, fetch: f, maxRetries: 0 });

    it('mutated answers of getDeployment, listDeployments and the project', async () => {
      const env = { project: 'acme', app: 'api', environment: 'production' };
      const depId = unkey.push({ ...env, branch: 'main' });
      unkey.push({ ...env, branch: 'feature', status: 'building' });
      const projectId = vercel.addProject({ name: 'acme-web', teamId: TEAM });
      const dplId = vercel.deploy({ project: projectId });
      const calls: [string, (f: typeof fetch) => Promise<unknown>][] = [
        [
          'unkey/getDeployment',
          (f) =>
            unkeyClient(f).call('deployments.getDeployment', { deploymentId: depId }, UnkeyGetDeployment, {
              idempotent: true,
            }),
        ],
        [
          'unkey/listDeployments',
          (f) =>
            unkeyClient(f).call('deployments.listDeployments', { ...env, limit: 100 }, UnkeyListDeployments, {
              idempotent: true,
            }),
        ],
        [
          'vercel/project',
          (f) =>
            vercelClient(f).call(
              { method: 'GET', path: '/v9/projects/acme-web', idempotent: true },
              VercelProject,
            ),
        ],
        [
          'vercel/listDeployments',
          (f) =>
            vercelClient(f).call(
              { method: 'GET', path: '/v6/deployments', query: { projectId, limit: 10 }, idempotent: true },
              VercelListDeployments,
            ),
        ],
        [
          'vercel/getDeployment',
          (f) =>
            vercelClient(f).call(
              { method: 'GET', path: `/v13/deployments/${dplId}`, idempotent: true },
              VercelGetDeployment,
            ),
        ],
      ];
      for (const [n, [edge, call]] of calls.entries()) {
        const real = await recorded(call);
        const counts = await fuzz(
          edge,
          seedOf(60 + n),
          [real],
          async (body) => {
            try {
              await call(answering(JSON.stringify(body)));
              return undefined;
            } catch (e) {
              if (!(e instanceof PlatformHttpError) || e.platformCode !== 'invalid_response') throw e;
              return e.message;
            }
          },
          { cases: 100, expected: /expect|required|unknown key|invalid|too (small|big)/i },
        );
        expect(counts.refused, edge).toBeGreaterThan(10);
      }
    });
  });

  describe('alert webhooks over HTTP', () => {
    let h: Harness;
    let http: HttpServer;
    let base: string;

    beforeAll(async () => {
      h = await createHarness({
        file: {
          environments: {
            production: { channels: { slack: 'C0ALERTS' }, alertMatchers: ['checkout'] },
            preview: {},
          },
        },
      });
      http = new HttpServer();
      registerAlertWebhooks(http, {
        intake: h.service,
        config: h.config,
        metrics: h.metrics,
        clock: h.clock,
      });
      base = `http://127.0.0.1:${await http.listen(0, '127.0.0.1')}`;
    });
    afterAll(async () => {
      await http.close();
      await h.close();
    });

    it('a refused mutated body is a 400 naming the field, never a 500, and changes nothing', async () => {
      const rand = mulberry32(seedOf(70));
      let sent = 0;
      for (const source of SOURCES) {
        const inputs = ALERT_INPUTS[source];
        let refused = 0;
        for (let n = 0; n < 200 && refused < 8; n++) {
          const index = Math.floor(rand() * inputs.length);
          const [name, resource] = inputs[index] as readonly [string, string | undefined];
          const { value, mutations } = mutate(rand, fixture(name));
          const text = JSON.stringify(value);
          const expected = alertRefusal(source, JSON.parse(text), resource);
          if (expected === undefined) continue;
          refused++;
          sent++;
          const where = `HTTP ${source} seed ${seedOf(70)} case ${n} (${name}; ${shownMutations(mutations)})`;
          const res = await fetch(`${base}/webhooks/alerts/${source}`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              ...(resource === undefined ? {} : { 'sentry-hook-resource': resource }),
            },
            body: text,
          });
          const reply = (await res.json()) as { error?: string; message?: string };
          if (res.status === 413) {
            // Larger than alerts.maxBodyBytes: refused before it is read, naming the setting.
            expect(reply.message, where).toMatch(/maxBodyBytes/);
            continue;
          }
          expect({ where, status: res.status, error: reply.error }).toEqual({
            where,
            status: 400,
            error: 'invalid_payload',
          });
          expect(reply.message, where).toBe(expected);
          expect(namesField(reply.message ?? '', mutations), `${where}: ${reply.message}`).toBe(true);
        }
        expect(refused, source).toBeGreaterThan(0);
      }
      await h.service.idle();
      expect(sent).toBeGreaterThan(30);
      expect(h.sink.suggestions).toEqual([]);
      expect(await h.plans.dueToExpire(Number.MAX_SAFE_INTEGER, 100)).toEqual([]);
    });
  });
});
