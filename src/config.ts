/**
 * Configuration: every env var and the YAML config file (`SWITCHYARD_CONFIG`), parsed with zod.
 * The only module of Switchyard (src/, handlers/, jobs/) that reads its configuration from the
 * environment (STYLE 6). Elsewhere `process.env` is read only for the process's own variables: `PATH`
 * to find redis-server, and the whole environment handed on to apt-get when installing it
 * (src/redis-server.ts, scripts/ensure-deps.mjs), and npm's `npm_lifecycle_event` (handlers/cli.ts);
 * the benches read theirs through `parseEnv` too. A bad value stops start-up with a ConfigError naming
 * the key, the value and what was expected.
 */
import { readFileSync } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import {
  isAlias,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type ErrorCode as YamlErrorCode,
} from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { DEFAULT_HTTP_LIMITS } from './http.js';
import {
  CLUSTER_URL_SHAPE,
  ClusterUrlError,
  isClusterUrl,
  parseClusterUrl,
  parseRedisUrl,
  REDIS_URL_SHAPE,
  RedisUrlError,
} from './redis-url.js';
import { expectation, valueAt } from './zod-issues.js';

/**
 * A port: decimal digits only (no spaces, `0x1F90` or `3e3`, which a number coercion would take: `"   "`
 * became 0, a random port), 0-65535. 0 means any free port (tests, several instances on one machine).
 */
const port = z
  .string()
  .regex(/^\d{1,5}$/, 'expected a port number (decimal digits, 0-65535; 0 for any free port)')
  .transform(Number)
  .refine((n) => n <= 65535, 'expected a port between 0 and 65535');

/** A host name (RFC 1123 labels; `_` too, as Docker Compose names have). */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;

/** Whether `host` is an IP address (an IPv6 one with or without brackets) or a host name to listen on. */
export function isListenHost(host: string): boolean {
  const bare = /^\[.*\]$/.test(host) ? host.slice(1, -1) : host;
  if (bare !== host) return isIPv6(bare);
  if (isIP(host) !== 0) return true;
  // All digits and dots but not an IPv4 address (`999.1.1.1`, `10.1`): a mistyped address, not a name.
  return HOST_NAME.test(host) && !/^[\d.]+$/.test(host);
}

/** The address part of a URL reaching a server bound to `host`: IPv6 in brackets; a wildcard as loopback. */
export function urlHost(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === '0.0.0.0') return '127.0.0.1';
  if (isIPv6(bare)) return /^[0:]+$/.test(bare) ? '[::1]' : `[${bare}]`;
  return bare;
}

/**
 * The `http://` URL of `path` on a server listening on `host`:`port`, as printed for an operator: a
 * wildcard address (0.0.0.0, ::) becomes the loopback one (reachable from this machine), and an IPv6
 * address gets its brackets.
 */
export function localHttpUrl(host: string, port: number, path = '/'): string {
  return `http://${urlHost(host)}:${port}${path}`;
}

/**
 * The user info of a URL (`user:password@`, after `scheme://`, up to the first `/`, `?` or `#`),
 * without its `@`; undefined when it has none.
 */
function userinfoOf(url: string): string | undefined {
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const authority = rest.split(/[/?#]/, 1)[0] ?? '';
  const at = authority.lastIndexOf('@');
  return at < 0 ? undefined : authority.slice(0, at);
}

/** What a URL whose user name or password holds an `@` of its own is told (the value is not echoed). */
const UNENCODED_AT =
  'the user name or password contains an @ that is not percent-encoded: write each @ in them as %40';

/**
 * An http(s) API base URL. `z.url()` alone takes any scheme, so `api.vercel.com:443` (scheme
 * `api.vercel.com:`), `localhost:9000/api/`, `ftp:` or `mailto:` passed and failed at the first request.
 * Credentials (`https://user:password@proxy/…`) are refused too: every client authenticates with its
 * own token; node's fetch (Slack's client, Unkey's, Vercel's) refuses a URL with credentials and
 * discord.js drops them unsent; and the URL would be named, password and all, in errors, log lines
 * and `/readyz`.
 */
export function httpUrl(example: string) {
  const wrong = `expected an http:// or https:// URL such as ${example}`;
  return z.string().superRefine((v, ctx) => {
    if (!/^https?:\/\/[^\s/?#]/i.test(v)) {
      ctx.addIssue({ code: 'custom', message: wrong });
      return;
    }
    if (userinfoOf(v) !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a URL without user:password@, such as ${example}: requests carry their token, and credentials in a URL are never sent (node's fetch refuses such a URL); remove them`,
      });
      return;
    }
    try {
      const u = new URL(v);
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '') return;
    } catch {
      // not a URL: said below
    }
    ctx.addIssue({ code: 'custom', message: wrong });
  });
}
const optionalString = z.string().trim().min(1, 'expected a non-empty string').optional();

/** A Discord bot token as Discord's REST wants it after `Bot `: a leading `Bot `/`Bearer ` removed. */
export function normalizeDiscordToken(token: string): string {
  return token
    .trim()
    .replace(/^(Bot|Bearer)\s+/i, '')
    .trim();
}

/** Env vars Switchyard reads. Unknown env vars are ignored (the environment is shared with the OS). */
export const envSchema = z.object({
  PORT: port.default(3000),
  /** The address to listen on: an IP address (IPv6 with or without brackets) or a host name. */
  HOST: z
    .string()
    .trim()
    .refine(isListenHost, 'expected an IP address (127.0.0.1, 0.0.0.0, ::1, ::) or a host name')
    .transform((h) => h.replace(/^\[(.*)\]$/, '$1'))
    .default('127.0.0.1'),
  /**
   * One Redis (`redis://`, `rediss://`, `unix:///path`, `/path/to.sock`) or a Redis Cluster
   * (`redis+cluster://[user:password@]host:port[,host:port…]`, `rediss+cluster://…` with TLS: seed nodes,
   * see src/redis-url.ts). Unset: `npm start` spawns a private single Redis.
   */
  REDIS_URL: z
    .string()
    .superRefine((value, ctx) => {
      if (!isClusterUrl(value)) {
        if (!/^(rediss?:\/\/|unix:\/\/|\/)/.test(value))
          ctx.addIssue({
            code: 'custom',
            message: `expected redis://host:port, rediss://…, unix:///path or /path/to.sock (one Redis), or ${CLUSTER_URL_SHAPE} (a Redis Cluster)`,
          });
        // Several hosts in a one-Redis URL: a cluster's seed nodes written without its scheme.
        else if (/^rediss?:\/\/[^/?#]*,/.test(value))
          ctx.addIssue({
            code: 'custom',
            message: `expected one host in a redis:// URL; for a Redis Cluster list its nodes as ${CLUSTER_URL_SHAPE}`,
          });
        // A password's own `@` unencoded: parsers split such a URL differently (at its first or its
        // last `@`), and a message showing "the host" would show the rest of the password.
        else if (userinfoOf(value)?.includes('@'))
          ctx.addIssue({ code: 'custom', message: `expected ${REDIS_URL_SHAPE}; ${UNENCODED_AT}` });
        else {
          // The whole URL, as src/redis.ts will read it: host, port, credentials' encoding, database.
          try {
            parseRedisUrl(value);
          } catch (e) {
            if (!(e instanceof RedisUrlError)) throw e;
            ctx.addIssue({ code: 'custom', message: `expected ${REDIS_URL_SHAPE}; ${e.message}` });
          }
        }
        return;
      }
      if (userinfoOf(value)?.includes('@')) {
        ctx.addIssue({ code: 'custom', message: `expected ${CLUSTER_URL_SHAPE}: ${UNENCODED_AT}` });
        return;
      }
      try {
        parseClusterUrl(value);
      } catch (e) {
        if (!(e instanceof ClusterUrlError)) throw e;
        ctx.addIssue({ code: 'custom', message: `expected ${CLUSTER_URL_SHAPE}: ${e.message}` });
      }
    })
    .optional(),
  SWITCHYARD_CONFIG: optionalString,
  SWITCHYARD_DATA_DIR: optionalString,
  /** The local console page: on by default with the local platform, off otherwise. */
  SWITCHYARD_CONSOLE: z.enum(['on', 'off'], { error: 'expected on or off' }).optional(),
  /**
   * Login of the console: when set, the page and its API need it (open `/?token=<token>` once; a
   * SameSite=Strict cookie carries a value derived from it, or send `Authorization: Bearer <token>`).
   * Required when the console listens on an address other machines can reach.
   */
  SWITCHYARD_CONSOLE_TOKEN: z
    .string()
    .trim()
    .min(16, 'expected a token of at least 16 characters')
    .optional(),
  /** Whether this bot process runs a switch worker (`off`: a replica that only takes commands). */
  SWITCHYARD_WORKER: z.enum(['on', 'off'], { error: 'expected on or off' }).default('on'),
  PLATFORM: z
    .enum(['local', 'unkey', 'vercel'], { error: 'expected one of local, unkey, vercel' })
    .optional(),
  LOCAL_ROUTER_PORT: port.default(8080),
  LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
      error: 'expected one of trace, debug, info, warn, error, fatal, silent',
    })
    .default('info'),
  SLACK_BOT_TOKEN: z
    .string()
    .regex(/^xoxb-/, 'expected a bot token starting with xoxb-')
    .optional(),
  SLACK_SIGNING_SECRET: optionalString,
  SLACK_APP_TOKEN: z
    .string()
    .regex(/^xapp-/, 'expected an app-level token starting with xapp-')
    .optional(),
  SLACK_API_URL: httpUrl('https://slack.com/api/').optional(),
  SLACK_ALERT_CHANNEL: optionalString,
  /**
   * The bot token, without a `Bot ` (or `Bearer `) prefix that people copy along from examples of the
   * `Authorization` header: normalised here once, so every user of it (the gateway bot, `npm run
   * worker`'s reporters, `npm run discord:register`) sends `Authorization: Bot <token>`.
   */
  DISCORD_TOKEN: optionalString.transform((value, ctx) => {
    if (value === undefined) return undefined;
    const token = normalizeDiscordToken(value);
    if (/^(Bot|Bearer)$/i.test(token)) {
      ctx.addIssue({ code: 'custom', message: `expected the bot token itself, got only "${token}"` });
      return z.NEVER;
    }
    return token;
  }),
  /**
   * Whether this process opens Discord's gateway session (`on`) or only uses Discord's REST API with
   * DISCORD_TOKEN (`off`: it edits the Discord messages of the switches its worker runs and posts
   * alert suggestions and notices, but receives no commands, clicks or watched-channel messages).
   * Several replicas: every one gets DISCORD_TOKEN so that its worker and posters reach Discord, and
   * exactly one keeps the gateway on (one session per token).
   */
  DISCORD_GATEWAY: z.enum(['on', 'off'], { error: 'expected on or off' }).default('on'),
  DISCORD_APPLICATION_ID: z
    .string()
    .regex(/^\d{5,25}$/, 'expected a numeric Discord snowflake')
    .optional(),
  DISCORD_GUILD_ID: z
    .string()
    .regex(/^\d{5,25}$/, 'expected a numeric Discord snowflake')
    .optional(),
  DISCORD_API_URL: httpUrl('https://discord.com/api').optional(),
  DISCORD_ALERT_CHANNEL: z
    .string()
    .regex(/^\d{5,25}$/, 'expected a numeric Discord channel id')
    .optional(),
  UNKEY_ROOT_KEY: optionalString,
  UNKEY_API_URL: httpUrl('https://api.unkey.com').default('https://api.unkey.com'),
  VERCEL_TOKEN: optionalString,
  VERCEL_TEAM_ID: optionalString,
  VERCEL_API_URL: httpUrl('https://api.vercel.com').default('https://api.vercel.com'),
  /** Vercel project id or name (overrides the config file's `vercel.project`). */
  VERCEL_PROJECT: optionalString,
  ALERT_WEBHOOK_SECRET: optionalString,
});
export type EnvConfig = z.infer<typeof envSchema>;

/**
 * A Discord id (a snowflake: 17-20 digits) in the YAML file. Unquoted, YAML reads it as a number and
 * rounds it (112233445566778899 becomes 112233445566778900) before anything here sees it, so a number
 * is refused with the advice to quote it, not with "expected a string" beside an id that looks changed.
 */
function discordId(what: string) {
  return z
    .string({
      error: (issue) =>
        issue.code === 'invalid_type' && typeof issue.input === 'number'
          ? `expected the Discord ${what} in quotes, e.g. "112233445566778899": unquoted, YAML reads it as a number and rounds it`
          : `expected a numeric Discord ${what}`,
    })
    .regex(/^\d{5,25}$/, `expected a numeric Discord ${what}`);
}

/**
 * A list of chat ids (users, groups, roles, channels) in the YAML file, e.g. `idList('Slack user id',
 * 'U012ABCDEF')`. A Discord id written as a bare number is refused with the advice to quote it (see
 * `discordId`); which ids exist is the chat's business, not checked here.
 */
function idList(what: string, example: string, surface: 'slack' | 'discord' | 'console') {
  const id = z
    .string({
      error: (issue) =>
        surface === 'discord' && issue.code === 'invalid_type' && typeof issue.input === 'number'
          ? `expected each ${what} in quotes, e.g. "${example}": unquoted, YAML reads it as a number and rounds it`
          : `expected a non-empty ${what}`,
    })
    .trim()
    .min(1);
  const shown = surface === 'discord' ? `"${example}"` : example;
  return z.array(id, { error: `expected a list of ${what}s, e.g. [${shown}]` }).default([]);
}

/**
 * A Slack channel to watch for alert messages (`alerts.watch.slack`): its id (`C…`, or `G…` for an old
 * private channel), never its name. Slack's events carry the channel's id, so a name (`#alerts`,
 * `alerts`) would never match a message and the channel would silently go unwatched.
 */
const slackChannelId = z
  .string({ error: 'expected a Slack channel id such as C0123ALERTS' })
  .trim()
  .regex(
    /^[CG][A-Z0-9]{2,}$/,
    "expected a Slack channel id such as C0123ALERTS (C or G, then uppercase letters and digits), not a channel name: Slack's events name channels by id, so a name never matches. Find the id in Slack: open the channel's details (click its name); it is at the bottom of the About tab",
  );

/** Who may act on an environment, per chat surface. */
const allowSchema = z
  .object({
    slack: z
      .object({
        users: idList('Slack user id', 'U012ABCDEF', 'slack'),
        groups: idList('Slack user group id', 'S0SRE', 'slack'),
      })
      .strict()
      .default({ users: [], groups: [] }),
    discord: z
      .object({
        users: idList('Discord user id', '112233445566778899', 'discord'),
        roles: idList('Discord role id', '112233445566778899', 'discord'),
      })
      .strict()
      .default({ users: [], roles: [] }),
    console: z
      .object({ users: idList('console user name', 'alice', 'console') })
      .strict()
      .default({ users: [] }),
  })
  .strict();

/** The surfaces a `people` entry links accounts of. */
const PERSON_SURFACES = ['slack', 'discord', 'console'] as const;

/**
 * One person's accounts on several chat surfaces (`people`): Switchyard tells people apart per surface
 * (a Slack user id and a Discord user id are two people), so without this one person permitted on two
 * surfaces could confirm on one and approve on the other under the two-person rule.
 */
const personSchema = z
  .object({
    /** A label for messages and logs; the accounts decide. */
    name: z
      .string({ error: 'expected a name for this person, e.g. Alice' })
      .trim()
      .min(1)
      .max(100)
      .optional(),
    slack: z
      .string({ error: 'expected a Slack user id, e.g. U012ABCDEF' })
      .trim()
      .regex(
        /^[UW][A-Z0-9]{2,}$/,
        'expected a Slack user id, e.g. U012ABCDEF (U or W, then uppercase letters and digits)',
      )
      .optional(),
    discord: discordId('user id').optional(),
    console: z.string({ error: 'expected a console user name, e.g. alice' }).trim().min(1).optional(),
  })
  .strict()
  .refine((p) => PERSON_SURFACES.filter((s) => p[s] !== undefined).length >= 2, {
    error:
      'expected the accounts of one person on at least two of slack, discord and console (an entry links them as one person), e.g. { name: Alice, slack: U012ABCDEF, discord: "112233445566778899" }',
  });

/** `people`: each account in at most one entry (an account belongs to one person). */
const peopleSchema = z
  .array(personSchema, {
    error: 'expected a list of people, e.g. [{ slack: U012ABCDEF, discord: "112233445566778899" }]',
  })
  .max(10_000)
  .default([])
  .superRefine((people, ctx) => {
    const seen = new Map<string, number>();
    people.forEach((person, i) => {
      for (const surface of PERSON_SURFACES) {
        const id = person[surface];
        if (id === undefined) continue;
        const key = `${surface}:${id}`;
        const first = seen.get(key);
        if (first === undefined) seen.set(key, i);
        else
          ctx.addIssue({
            code: 'custom',
            path: [i, surface],
            message: `expected each account in one entry only: ${surface} ${id} is also in people.${first} (an account belongs to one person; merge the two entries if they are the same person)`,
          });
      }
    });
  });

const noticeEvent = z.enum(['ready', 'failed', 'traffic_moved', 'standby', 'stopped'], {
  error: 'expected one of ready, failed, traffic_moved, standby, stopped',
});

/**
 * The longest duration a timer can wait: Node's setTimeout fires after 1 ms instead of waiting longer
 * than 2^31-1 ms (about 24.8 days).
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** `ms` as the shortest duration text that says it exactly (`50ms`, `1s`, `2m`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * What a duration of a key must be: at least `minMs` (a poll interval of 0 spins, a lock of 0 expires
 * at once), at most MAX_DURATION_MS; with `zeroOff`, 0 is also allowed and means "off".
 */
export function durationRange(minMs: number, opts: { readonly zeroOff?: boolean } = {}) {
  return {
    check: (ms: number) => (opts.zeroOff === true && ms === 0) || (ms >= minMs && ms <= MAX_DURATION_MS),
    message: `expected a duration from ${formatDuration(minMs)} to ${MAX_DURATION_MS}ms (about 24.8 days, the longest a timer can wait)${opts.zeroOff === true ? ', or 0 (off)' : ''}`,
  };
}

/** A duration in the YAML file (`30s`, `15m`, `4h`, `1d`, `500ms`, or a number of milliseconds). */
function durationMs(minMs: number, opts: { readonly zeroOff?: boolean } = {}) {
  const range = durationRange(minMs, opts);
  return z
    .union(
      [
        // a negative number fails the range check below, which says what the key takes
        z.number(),
        z.string().regex(/^\d+(ms|s|m|h|d)$/, 'expected a duration such as 30s, 15m or 4h'),
      ],
      { error: 'expected a duration such as 30s, 15m or 4h, or a number of milliseconds' },
    )
    .transform((v) => (typeof v === 'number' ? v : parseDuration(v)))
    .refine(range.check, range.message);
}

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new ConfigError(`invalid duration "${text}"`, { value: text });
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return n * unit;
}

/**
 * Whether an `alertMatchers` entry is usable: a plain substring, or a `/regex/flags` that compiles (as
 * src/alerts/mapping.ts compiles it; there an invalid one would be matched as literal text, which is
 * never what its author meant, so start-up refuses it instead).
 */
function validMatcher(pattern: string): boolean {
  const m = /^\/(.+)\/([a-z]*)$/s.exec(pattern);
  if (m?.[1] === undefined) return true;
  try {
    new RegExp(m[1], (m[2] ?? '').replace(/[gy]/g, ''));
    return true;
  } catch {
    return false;
  }
}

export const environmentConfigSchema = z
  .object({
    /** Allow lists; absent means "nobody" on a real platform and "everybody" on the local one. */
    allow: allowSchema.optional(),
    /** A second permitted person must approve each switch. */
    twoPersonRule: z.boolean().default(false),
    /** Where notices and alert suggestions go for this environment. */
    channels: z
      .object({
        slack: optionalString,
        discord: discordId('channel id').optional(),
        console: optionalString,
      })
      .strict()
      .default({}),
    /** Patterns in alert text or labels that name this environment (plain substrings or /regex/i). */
    alertMatchers: z
      .array(
        z
          .string({ error: 'expected a plain substring or a /regex/flags' })
          .min(1, 'expected a non-empty substring or /regex/flags')
          .refine(
            validMatcher,
            'expected a plain substring or a valid /regex/flags (this one is not a valid regular expression)',
          ),
      )
      .default([]),
    notices: z
      .object({
        enabled: z.boolean().default(true),
        events: z.array(noticeEvent).default(['ready', 'failed', 'traffic_moved']),
        reminderEvery: durationMs(60_000, { zeroOff: true }).default(4 * 3_600_000),
        /** Reminders are held outside these UTC hours, e.g. [8, 20]. */
        workingHoursUtc: z
          .tuple(
            [
              z
                .number({ error: 'expected the first working hour: a whole number from 0 to 23' })
                .int()
                .min(0)
                .max(23),
              z
                .number({ error: 'expected the end of working hours: a whole number from 1 to 24' })
                .int()
                .min(1)
                .max(24),
            ],
            { error: 'expected [first hour, end hour] in UTC, e.g. [8, 20]' },
          )
          .optional(),
      })
      .strict()
      .default({ enabled: true, events: ['ready', 'failed', 'traffic_moved'], reminderEvery: 4 * 3_600_000 }),
    /** Unkey mapping of this environment. */
    unkey: z
      .object({
        project: z.string({ error: 'expected the Unkey project slug or id' }).min(1),
        app: z.string({ error: 'expected the Unkey app slug or id' }).min(1).optional(),
        environment: z.string({ error: 'expected the Unkey environment slug or id, e.g. production' }).min(1),
      })
      .strict()
      .optional(),
  })
  .strict();
export type EnvironmentConfig = z.infer<typeof environmentConfigSchema>;

export const fileConfigSchema = z
  .object({
    platform: z
      .enum(['local', 'unkey', 'vercel'], { error: 'expected one of local, unkey, vercel' })
      .default('local'),
    environments: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a lowercase slug'), environmentConfigSchema)
      .default({}),
    /**
     * One person's accounts on several chat surfaces: the two-person rule counts them as one person
     * (src/permissions.ts `samePerson`). Permissions stay per account (`environments.<env>.allow`).
     */
    people: peopleSchema,
    verify: z
      .object({
        timeout: durationMs(1_000).default(120_000),
        /** How often a switch polls the platform and probes traffic: 0 would spin. */
        interval: durationMs(10).default(500),
        /**
         * How long one attempt of a switch follows the platform's operation (a standby target
         * reactivating, a platform queue) before it gives up with a retryable platform_timeout; the
         * next attempt follows the same operation again, it never starts a second one.
         */
        operationTimeout: durationMs(1_000).default(600_000),
      })
      .strict()
      .default({ timeout: 120_000, interval: 500, operationTimeout: 600_000 }),
    alerts: z
      .object({
        correlationWindow: durationMs(1_000).default(3_600_000),
        outsideWindow: z
          .enum(['nothing', 'note'], { error: 'expected nothing or note (a note without a button)' })
          .default('nothing'),
        watch: z
          .object({
            slack: z
              .array(slackChannelId, { error: 'expected a list of Slack channel ids, e.g. [C0123ALERTS]' })
              .default([]),
            discord: idList('Discord channel id', '223344556677889900', 'discord'),
          })
          .strict()
          .default({ slack: [], discord: [] }),
        maxBodyBytes: z
          .number({ error: 'expected a whole number of bytes, at least 1 (the default 1048576 is 1 MiB)' })
          .int()
          .positive()
          .default(1_048_576),
        sentrySecret: optionalString,
        pagerdutySecret: optionalString,
      })
      .strict()
      .default({
        correlationWindow: 3_600_000,
        outsideWindow: 'nothing',
        watch: { slack: [], discord: [] },
        maxBodyBytes: 1_048_576,
      }),
    /** What one client may hold of the HTTP port (src/http.ts `HttpLimits`); not the local router's. */
    http: z
      .object({
        headersTimeout: durationMs(100).default(DEFAULT_HTTP_LIMITS.headersTimeout),
        requestTimeout: durationMs(100).default(DEFAULT_HTTP_LIMITS.requestTimeout),
        maxConnections: z
          .number({ error: 'expected a whole number of connections, at least 1 (default 1024)' })
          .int()
          .positive()
          .default(DEFAULT_HTTP_LIMITS.maxConnections),
      })
      .strict()
      // node refuses it otherwise: the headers are part of the request.
      .refine((h) => h.headersTimeout <= h.requestTimeout, {
        path: ['headersTimeout'],
        error: (issue) =>
          `expected at most http.requestTimeout (${formatDuration((issue.input as { requestTimeout: number }).requestTimeout)}): the headers are part of the request`,
        // only between two valid durations: a bad one is named on its own
        when: (payload) => payload.issues.length === 0,
      })
      .default({
        headersTimeout: DEFAULT_HTTP_LIMITS.headersTimeout,
        requestTimeout: DEFAULT_HTTP_LIMITS.requestTimeout,
        maxConnections: DEFAULT_HTTP_LIMITS.maxConnections,
      }),
    local: z
      .object({
        /** JSON file holding the local platform's state across restarts. */
        stateFile: optionalString,
        buildTime: durationMs(0).default(3_000),
        reactivationTime: durationMs(0).default(1_500),
        /** A project to load instead of the built-in demo (see README). */
        seed: z.unknown().optional(),
      })
      .strict()
      .default({ buildTime: 3_000, reactivationTime: 1_500 }),
    /** Vercel project Switchyard acts on (`platform: vercel`); `VERCEL_PROJECT` overrides `project`. */
    vercel: z
      .object({
        project: z.string().trim().min(1, 'expected a Vercel project id or name').optional(),
        /** Offer the `preview` environment (read-only: Vercel rolls back production only). */
        preview: z.boolean().default(true),
      })
      .strict()
      .optional(),
  })
  .strict();
export type FileConfig = z.infer<typeof fileConfigSchema>;

export interface Config {
  readonly env: EnvConfig;
  readonly file: FileConfig;
  /** The platform in force: `PLATFORM` wins over the file's `platform`. */
  readonly platform: 'local' | 'unkey' | 'vercel';
}

/** Words that make a key a secret's: its value is never echoed in an error. */
const SECRET_WORDS = new Set(['token', 'secret', 'password', 'passwd', 'key', 'credentials']);

/**
 * Whether the key (a path such as `alerts.sentrySecret`, `UNKEY_ROOT_KEY`) names a secret: one of its
 * words, split at `_`, `.`, `-` and camelCase humps (`apiKey`, `APIKey`), is a secret word. Whole
 * words, not substrings: the "KEY" inside `UNKEY_API_URL` or `environments.production.unkey.project`
 * is no secret, and a search for the substring hid those values from the person fixing them. The
 * secrets Switchyard reads are
 * SWITCHYARD_CONSOLE_TOKEN, SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, DISCORD_TOKEN,
 * UNKEY_ROOT_KEY, VERCEL_TOKEN, ALERT_WEBHOOK_SECRET, alerts.sentrySecret and alerts.pagerdutySecret
 * (test/config/config.test.ts checks each); the credentials of a URL (REDIS_URL's password) are
 * masked by `hideUrlCredentials`.
 */
export function isSecretKey(key: string): boolean {
  return key
    .split(/[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/)
    .some((word) => SECRET_WORDS.has(word.toLowerCase()));
}

/** Whether the key (`REDIS_URL`, `--platform-url`, `SLACK_API_URL`) names a URL: a word of it is "url". */
function isUrlKey(key: string): boolean {
  return key.split(/[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])/).some((word) => word.toLowerCase() === 'url');
}

/**
 * A URL as an error shows it: everything between the scheme (`redis://`, a mistyped `redis:/`; the
 * start when there is none, as in `redis//…` or `:password@host`) and the last `@` masked
 * (`redis://***@host:6379`). The last `@`, not the parser's: a password's own `@`, `/`, `#` or space
 * written unencoded would otherwise show the rest of the password as the host or path. A user name
 * is masked too: some services take a token as the user name.
 */
function hideUrlCredentials(text: string): string {
  const at = text.lastIndexOf('@');
  if (at < 0) return text;
  const scheme = /^[a-z][a-z0-9+.-]*:\/+/i.exec(text)?.[0] ?? '';
  return `${scheme}***${text.slice(at)}`;
}

/**
 * How an error shows the value it got, without ever echoing a secret: secret keys are redacted, a
 * URL's credentials are masked, and a mapping or list (which may hold secrets a level down, e.g. the
 * parent of a misspelt key) is described by its keys or length, never its values.
 */
function describeValue(value: unknown, key: string): string {
  if (value === undefined) return 'nothing';
  if (isSecretKey(key)) return '(redacted)';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return 'an empty mapping';
    return `a mapping of ${keys.slice(0, 8).map(clipKey).join(', ')}${keys.length > 8 ? ', …' : ''}`;
  }
  // A URL key's value in any shape; elsewhere a value written as a URL.
  const masked =
    typeof value === 'string' && (isUrlKey(key) || /^[a-z][a-z0-9+.-]*:\/\//i.test(value))
      ? hideUrlCredentials(value)
      : value;
  const text = typeof masked === 'string' ? JSON.stringify(masked) : String(masked);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Turns a zod error into one message naming each bad key, its value and what was expected, e.g.
 * `PORT: got "abc", expected a port number`. Also used for the local platform's state file and seed,
 * its operator API, the console's API and the worker's flags.
 */
export function formatIssues(error: z.ZodError, input: unknown, prefix = ''): string {
  const lines = error.issues.slice(0, NAMED_ISSUES).map((issue) => {
    // A key as written, clipped (a 5,000-character environment name is not echoed back whole).
    const key = prefix + issue.path.map((k) => clipKey(String(k))).join('.');
    const value = valueAt(input, issue.path);
    if (issue.code === 'invalid_key') {
      const inner = issue.issues[0];
      return `${key}: invalid key, ${inner ? expectation(inner) : 'expected a valid key'}`;
    }
    // the schema's own message, or zod's default in the same words (never "Invalid option: …")
    // Whether the value is a secret is judged by the key in full, not the clipped one shown.
    const fullKey = prefix + issue.path.map(String).join('.');
    return `${key || '(root)'}: got ${describeValue(value, fullKey)}, ${expectation(issue)}`;
  });
  // A list of 5,000 wrong items is one problem repeated: the first few are named, the rest counted.
  const more = error.issues.length - NAMED_ISSUES;
  return more > 0 ? `${lines.join('; ')}; and ${more} more` : lines.join('; ');
}

/** Most problems one message of formatIssues names. */
const NAMED_ISSUES = 10;

/** A key of a path or of a mapping as a message shows it: at most 40 characters. */
function clipKey(key: string): string {
  return key.length > 40 ? `${key.slice(0, 39)}…` : key;
}

/**
 * Command-line flags (`--name value`, or `--name` for a boolean), checked against `schema`, whose keys
 * are the flag names: a flag parseArgs refuses (unknown, a value missing) is named with the known ones;
 * a value the schema refuses is said as formatIssues says it ("--port: got …, expected …"), after `what`
 * ("Invalid worker flags: "). Throws ConfigError.
 */
export function parseFlags<S extends z.ZodObject>(
  argv: readonly string[],
  schema: S,
  type: 'string' | 'boolean',
  what = '',
): z.output<S> {
  const flags = Object.keys(schema.shape);
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: [...argv],
      options: Object.fromEntries(flags.map((f) => [f, { type }])),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}. Known flags: ${flags.map((f) => `--${f}`).join(', ')}`);
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw new ConfigError(`${what}${formatIssues(parsed.error, values, '--')}`);
  return parsed.data;
}

/** Parses env vars; throws ConfigError naming each bad key. */
export function parseEnv(source: Readonly<Record<string, string | undefined>>): EnvConfig {
  // An empty env var means "unset", as shells and compose files commonly produce.
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const result = envSchema.safeParse(cleaned);
  if (!result.success) throw new ConfigError(`Invalid environment: ${formatIssues(result.error, cleaned)}`);
  return result.data;
}

/**
 * What the YAML library found wrong, by its error code, in words (and advice): never the library's own
 * message, which quotes the token and the source line, and so a secret written unquoted (`!Xk3…`).
 * A code not listed here is shown in words (`BLOCK_AS_IMPLICIT_KEY`: `block as implicit key`).
 */
const YAML_PROBLEMS: Partial<Record<YamlErrorCode | 'UNRESOLVED_ALIAS', readonly [string, string?]>> = {
  TAG_RESOLVE_FAILED: ['unresolved tag', 'quote values that start with ! or *'],
  BAD_COLLECTION_TYPE: ['a tag that does not fit its value', 'quote values that start with ! or *'],
  UNRESOLVED_ALIAS: ['unresolved alias', 'quote values that start with * or !'],
  BAD_ALIAS: ['ambiguous alias or anchor', 'quote values that start with *, & or !'],
  ALIAS_PROPS: ['an alias with a tag or anchor', 'quote values that start with *, & or !'],
  DUPLICATE_KEY: ['duplicate key'],
  MULTIPLE_DOCS: ['more than one document (a --- line)'],
  BAD_INDENT: ['bad indentation'],
  TAB_AS_INDENT: ['a tab used as indentation', 'indent with spaces'],
  MISSING_CHAR: ['a closing quote or bracket is missing'],
  BAD_SCALAR_START: ['a value that cannot start with this character', 'quote it'],
  BAD_DQ_ESCAPE: ['an invalid escape in a double-quoted value'],
  MULTILINE_IMPLICIT_KEY: ['a key spanning lines'],
  KEY_OVER_1024_CHARS: ['a key longer than 1024 characters'],
  BAD_DIRECTIVE: ['an unknown directive (a line starting with %)'],
  UNEXPECTED_TOKEN: ['unexpected characters'],
};

/** Codes whose position is a tag just before the node it concerns: the message names that node's key. */
const YAML_TAG_CODES: readonly string[] = ['TAG_RESOLVE_FAILED', 'BAD_COLLECTION_TYPE'];

/** One thing wrong in the YAML text: its code, where it is, and the key path of its value when known. */
interface YamlProblem {
  readonly code: string;
  /** Where it starts, and ends (a tag: where its node starts, spaces apart). */
  readonly offset: number;
  readonly end: number;
  readonly key?: string;
}

/** `alerts.sentrySecret`, `environments.production.allow.slack.users.0`: like formatIssues' keys. */
function yamlKeyPath(ancestors: readonly unknown[], node: unknown): string {
  const chain = [...ancestors, node];
  const parts: string[] = [];
  for (let i = 0; i < chain.length - 1; i++) {
    const at = chain[i];
    const next = chain[i + 1];
    if (isPair(at) && next === at.value) parts.push(isScalar(at.key) ? String(at.key.value) : '?');
    else if (isSeq(at)) parts.push(String(at.items.indexOf(next as never)));
  }
  return parts.join('.');
}

/**
 * The YAML text as a plain value. What is wrong is named by the error code, line and column (and the
 * key, for a tag or alias), never by the parser's text, which quotes the source line: secrets are never
 * echoed, and a generated secret may start with `!` or `*`. Warnings are refused too: an
 * unresolved tag silently reads the value as "", worse than stopping. `logLevel: 'error'` keeps the
 * library from printing warnings itself through process.emitWarning, which quotes the source line.
 */
function readYaml(text: string, fileName: string): unknown {
  const fail = (what: string): never => {
    throw new ConfigError(`${fileName}: not valid YAML: ${what}`, { file: fileName });
  };
  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    // prettyErrors off: the errors' messages are not even built with the source line.
    doc = parseDocument(text, { lineCounter, logLevel: 'error', prettyErrors: false });
  } catch {
    return fail('the parser stopped');
  }
  const problems: YamlProblem[] = [...doc.errors, ...doc.warnings].map((e) => ({
    code: e.code,
    offset: e.pos[0],
    end: e.pos[1],
  }));
  // Aliases whose anchor is not set before them (the library's order: document order, the anchored node
  // before its children): converting would throw an error naming the alias, a secret written `*…`.
  // And every node's start and key, to name the value a tag problem is about.
  const anchors = new Set<string>();
  const nodes: { readonly start: number; readonly key: string }[] = [];
  visit(doc, {
    Node: (_key, node, path) => {
      const start = node.range?.[0] ?? 0;
      const key = yamlKeyPath(path, node);
      nodes.push({ start, key });
      if (isAlias(node) && !anchors.has(node.source)) {
        problems.push({ code: 'UNRESOLVED_ALIAS', offset: start, end: start, key });
      }
      if (node.anchor) anchors.add(node.anchor);
    },
  });
  if (problems.length > 0) {
    const shown = problems
      .map((p) => {
        // A tag ends where its node starts (spaces apart): the first node starting at or after its end.
        if (p.key !== undefined || !YAML_TAG_CODES.includes(p.code)) return p;
        const key = nodes.find((n) => n.start >= p.end)?.key;
        return key ? { ...p, key } : p;
      })
      .sort((a, b) => a.offset - b.offset)
      .map((p) => {
        const [what, advice] = YAML_PROBLEMS[p.code as YamlErrorCode] ?? [
          p.code.toLowerCase().replaceAll('_', ' '),
        ];
        const { line, col } = lineCounter.linePos(p.offset);
        return `${p.key ? `${p.key}: ` : ''}${what} at line ${line}, column ${col}${advice ? ` (${advice})` : ''}`;
      });
    // The library may report one place twice (a missing bracket: each level's indentation).
    const distinct = [...new Set(shown)];
    const more = distinct.length > 3 ? ` (and ${distinct.length - 3} more)` : '';
    return fail(`${distinct.slice(0, 3).join('; ')}${more}`);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    // Its message is not shown (some name an alias); an alias bomb is the one expected here.
    return fail(
      /alias count/i.test((e as Error).message)
        ? 'too many aliases (at most 100 expansions)'
        : 'could not be read',
    );
  }
}

/** Parses the YAML config text; throws ConfigError naming the file, the key and the expectation. */
export function parseConfigFile(text: string, fileName = 'config'): FileConfig {
  const raw = readYaml(text, fileName);
  const result = fileConfigSchema.safeParse(raw);
  if (!result.success)
    throw new ConfigError(`${fileName}: ${formatIssues(result.error, raw)}`, { file: fileName });
  return result.data;
}

/** Loads the whole configuration from env vars and, when `SWITCHYARD_CONFIG` is set, the YAML file. */
/** Whether the console runs: `SWITCHYARD_CONSOLE`, else on with the local platform only. */
export function consoleEnabled(
  env: Pick<EnvConfig, 'SWITCHYARD_CONSOLE'>,
  platform: Config['platform'],
): boolean {
  return env.SWITCHYARD_CONSOLE === undefined ? platform === 'local' : env.SWITCHYARD_CONSOLE === 'on';
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost): reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

export function loadConfig(
  source: Readonly<Record<string, string | undefined>> = process.env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): Config {
  const env = parseEnv(source);
  let file: FileConfig;
  if (env.SWITCHYARD_CONFIG) {
    let text: string;
    try {
      text = readFile(env.SWITCHYARD_CONFIG);
    } catch (e) {
      throw new ConfigError(
        `SWITCHYARD_CONFIG: cannot read "${env.SWITCHYARD_CONFIG}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        { key: 'SWITCHYARD_CONFIG' },
      );
    }
    file = parseConfigFile(text, env.SWITCHYARD_CONFIG);
  } else {
    file = fileConfigSchema.parse({});
  }
  const platform = env.PLATFORM ?? file.platform;
  if (platform === 'local' && env.PORT !== 0 && env.PORT === env.LOCAL_ROUTER_PORT) {
    // The local platform's router listens on LOCAL_ROUTER_PORT beside the HTTP port: both cannot have it.
    throw new ConfigError(
      `LOCAL_ROUTER_PORT: got ${env.LOCAL_ROUTER_PORT}, expected a port other than PORT's (${env.PORT}): the local platform's router and the HTTP port both listen`,
      { key: 'LOCAL_ROUTER_PORT' },
    );
  }
  if (
    consoleEnabled(env, platform) &&
    !isLoopbackHost(env.HOST) &&
    env.SWITCHYARD_CONSOLE_TOKEN === undefined
  ) {
    // The console acts as whoever the page says: other machines must not reach it without a login.
    throw new ConfigError(
      `SWITCHYARD_CONSOLE_TOKEN: got nothing, expected a token of at least 16 characters when the console listens on HOST=${env.HOST}, which other machines can reach (or keep HOST on 127.0.0.1, or set SWITCHYARD_CONSOLE=off)`,
      { key: 'SWITCHYARD_CONSOLE_TOKEN' },
    );
  }
  if (platform === 'unkey' && !env.UNKEY_ROOT_KEY) {
    throw new ConfigError(
      'UNKEY_ROOT_KEY: got nothing, expected an Unkey root key when the platform is unkey',
      {
        key: 'UNKEY_ROOT_KEY',
      },
    );
  }
  if (platform === 'vercel' && !env.VERCEL_TOKEN) {
    throw new ConfigError('VERCEL_TOKEN: got nothing, expected a Vercel token when the platform is vercel', {
      key: 'VERCEL_TOKEN',
    });
  }
  if (platform === 'vercel' && !env.VERCEL_PROJECT && !file.vercel?.project) {
    throw new ConfigError(
      'vercel.project: got nothing, expected the Vercel project id or name (vercel: {project: my-app} in the config file, or VERCEL_PROJECT) when the platform is vercel',
      { key: 'vercel.project' },
    );
  }
  if (env.SLACK_BOT_TOKEN && !env.SLACK_SIGNING_SECRET && !env.SLACK_APP_TOKEN) {
    throw new ConfigError(
      'SLACK_SIGNING_SECRET: got nothing, expected the app signing secret (or SLACK_APP_TOKEN for Socket Mode) when SLACK_BOT_TOKEN is set',
      { key: 'SLACK_SIGNING_SECRET' },
    );
  }
  // Half a surface's settings is a typo or a forgotten secret, not a choice: said, not silently ignored.
  const slackOnly = (['SLACK_SIGNING_SECRET', 'SLACK_APP_TOKEN'] as const).filter((k) => env[k]);
  if (!env.SLACK_BOT_TOKEN && slackOnly.length > 0) {
    throw new ConfigError(
      `SLACK_BOT_TOKEN: got nothing, expected the bot token (xoxb-…) when ${slackOnly.join(' and ')} ${slackOnly.length > 1 ? 'are' : 'is'} set (without it Slack would not start; unset ${slackOnly.join(' and ')} to run without Slack)`,
      { key: 'SLACK_BOT_TOKEN' },
    );
  }
  if (!env.DISCORD_TOKEN && env.DISCORD_APPLICATION_ID) {
    throw new ConfigError(
      'DISCORD_TOKEN: got nothing, expected the bot token when DISCORD_APPLICATION_ID is set (without it Discord would not start; unset DISCORD_APPLICATION_ID to run without Discord)',
      { key: 'DISCORD_TOKEN' },
    );
  }
  if (env.DISCORD_TOKEN && !env.DISCORD_APPLICATION_ID) {
    throw new ConfigError(
      'DISCORD_APPLICATION_ID: got nothing, expected the application id when DISCORD_TOKEN is set',
      {
        key: 'DISCORD_APPLICATION_ID',
      },
    );
  }
  return { env, file, platform };
}
