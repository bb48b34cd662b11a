/**
 * Seeded random scripts of alert deliveries handled by two replicas (two AlertServices on one Redis,
 * one plan store, one Slack), checked after every step against rules of docs/alerts.md. A script
 * mixes webhooks from three senders (generic, Alertmanager, Datadog, built from the vendor fixtures)
 * for production, preview and an environment Switchyard does not know, a Grafana DatasourceError,
 * the same delivery sent to both replicas at once, re-deliveries later, resolutions, storms of one
 * incident, clock steps (seconds, past the 10-minute windows, past 6 hours), deploys and rollbacks on
 * the platform between alerts, and Slack posts failing now and then like an outage.
 *
 * A failure names the seed and the script so far: RANDOM_SEED=<n> replays that script alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAlertPayload } from '../../src/alerts/parsers.js';
import { AlertService, compositeSink } from '../../src/alerts/service.js';
import {
  AlertOutcome,
  type AlertResult,
  type AlertSource,
  type NormalizedAlert,
} from '../../src/alerts/types.js';
import { suggestionSink } from '../../src/chat-sinks.js';
import { mulberry32 } from '../support/random.js';
import { createHarness, type Harness, MINUTE, viewText } from './helpers.js';

const HOUR = 60 * MINUTE;
const STEPS = 50;
const SCRIPTS = 8;

const fixtureDir = join(import.meta.dirname, '../fixtures/alerts');
const fixture = (name: string) =>
  JSON.parse(readFileSync(join(fixtureDir, name), 'utf8')) as Record<string, unknown>;
const iso = (ms: number) => new Date(ms).toISOString();

type Sender = 'generic' | 'alertmanager' | 'datadog';
/** `qa` names no environment Switchyard knows: its alerts stay unmapped whatever their title says. */
type Env = 'production' | 'preview' | 'qa';

/** One incident of one sender in one environment, as the script knows it. */
interface Incident {
  readonly n: number;
  readonly sender: Sender;
  readonly env: Env;
  startedAt: number;
  /** Whether its latest delivery that was handled fires or resolves. */
  state: 'firing' | 'resolved';
  /** When its latest alert was handled (records live 6 hours after it). */
  lastAt: number;
  /** Bumped when it fires again after resolving or after its record expired: a new occurrence. */
  occurrence: number;
  /** `suggested` answers per occurrence. */
  suggested: Map<number, number>;
  /** The plan its latest firing alert was suggested on or listed on. */
  planId: string | undefined;
  /** Its latest delivery whose handling left nothing to retry (what a sender may send again). */
  last: { status: 'firing' | 'resolved'; title: string } | undefined;
  /** A delivery answered 503 (the post failed for now): its sender sends it again. */
  owed: { status: 'firing' | 'resolved'; title: string } | undefined;
  /** When it was answered `resolved` (an entry of a plan may show resolved only after one). */
  resolvedAt: number[];
  /** Its latest delivery resolved it and was answered `resolved` (its entry must show it). */
  resolvedOk: boolean;
}

/** The alerts of a delivery as the webhook parses them. */
function delivery(
  h: Harness,
  inc: Incident,
  status: 'firing' | 'resolved',
  title: string,
): NormalizedAlert[] {
  const now = h.clock.now();
  const source: AlertSource = inc.sender;
  let body: Record<string, unknown>;
  if (inc.sender === 'generic') {
    body = { environment: inc.env, title, status, fingerprint: `inc${inc.n}`, startedAt: iso(inc.startedAt) };
  } else if (inc.sender === 'alertmanager') {
    const f = fixture('alertmanager-firing.json');
    const labels = { alertname: `Inc${inc.n}`, env: inc.env, job: 'api', severity: 'critical' };
    body = {
      ...f,
      groupKey: `{}:{alertname="Inc${inc.n}"}`,
      status,
      groupLabels: { alertname: `Inc${inc.n}` },
      commonLabels: labels,
      commonAnnotations: { summary: title },
      alerts: [
        {
          ...(f.alerts as Record<string, unknown>[])[0],
          status,
          labels,
          annotations: { summary: title },
          startsAt: iso(inc.startedAt),
          endsAt: status === 'resolved' ? iso(now) : '0001-01-01T00:00:00Z',
          fingerprint: `f${inc.n}`,
        },
      ],
    };
  } else {
    const f = fixture(status === 'firing' ? 'datadog-triggered.json' : 'datadog-recovered.json');
    const tag = status === 'firing' ? 'Triggered' : 'Recovered';
    const at = status === 'firing' ? inc.startedAt : now;
    body = {
      ...f,
      title: `[${tag} on {env:${inc.env}}] ${title}`,
      alert_title: title,
      date: String(at),
      last_updated: String(at),
      id: String(1_000_000 + inc.n * 1000 + (Math.floor(now / 1000) % 1000)),
      alert_id: String(9000 + inc.n),
      alert_cycle_key: String(7000 + inc.n),
      alert_scope: `env:${inc.env}`,
      tags: `env:${inc.env},service:api`,
    };
    delete body.alert_metric;
    delete body.alert_status;
  }
  const r = parseAlertPayload(source, body, { now });
  if (!r.ok) throw new Error(`the script built an invalid ${source} payload: ${r.refusal.message}`);
  return r.value;
}

/** Grafana's DatasourceError: about the monitoring, answered `ignored` (step 4), never suggested. */
function datasourceError(h: Harness): NormalizedAlert[] {
  const f = fixture('grafana-datasource-error.json');
  const alerts = (f.alerts as Record<string, unknown>[]).map((a) => ({
    ...a,
    startsAt: iso(h.clock.now() - MINUTE),
  }));
  const r = parseAlertPayload('grafana', { ...f, alerts }, { now: h.clock.now() });
  if (!r.ok) throw new Error(r.refusal.message);
  return r.value;
}

const DOCUMENTED = new Set<string>(Object.values(AlertOutcome));
/** Outcomes that change what chat shows (a post, a list entry, a resolution). */
const ACTING = new Set<string>(['suggested', 'grouped', 'resolved']);

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function replay(seed: number): Promise<void> {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const file = {
    environments: {
      production: { channels: { slack: 'C0PROD' }, alertMatchers: ['checkout'] },
      preview: { channels: { slack: 'C0PREVIEW' } },
    },
  };
  h = await createHarness({ file, memoryChat: ['slack'] });
  const hh = h;
  // A second replica: its own AlertService (its own posts and edits under way) and sink, on the same
  // Redis, plans and Slack, as grouping.test.ts's replica.
  const replicas = [
    hh.service,
    new AlertService({
      platform: hh.platform,
      flow: hh.flow,
      sink: compositeSink({ slack: suggestionSink(hh.slack, hh.chat, hh.flow) }),
      dedupe: hh.dedupe,
      config: hh.config,
      clock: hh.clock,
      surfaces: ['slack'],
    }),
  ] as const;
  const idle = async () => {
    await Promise.all(replicas.map((r) => r.idle()));
  };
  const incidents: Incident[] = [];
  const unmappedTitles: string[] = [];
  /** Plan ids answered, and the record generations that were `suggested` (one message each). */
  const plans = new Map<string, Set<string>>();
  let suggestedTotal = 0;
  const log: string[] = [];
  let step = 0;

  const newIncident = (env: Env): Incident => {
    const inc: Incident = {
      n: incidents.length + 1,
      sender: pick(['generic', 'alertmanager', 'datadog'] as const),
      env,
      startedAt: hh.clock.now() - int(0, 2) * MINUTE,
      state: 'firing',
      lastAt: hh.clock.now(),
      occurrence: 0,
      suggested: new Map(),
      planId: undefined,
      last: undefined,
      owed: undefined,
      resolvedAt: [],
      resolvedOk: false,
    };
    incidents.push(inc);
    return inc;
  };
  const titleOf = (inc: Incident) =>
    `${inc.env === 'preview' ? 'Search' : 'Checkout'} inc${inc.n} ${inc.sender} ${inc.env}`;
  const incidentOfTitle = (title: string) => incidents.find((i) => title.includes(`inc${i.n} `));

  /** Every message in Slack and every plan's alert list, to compare before and after a re-delivery. */
  const snapshot = async () => {
    const messages = [...hh.slack.messages.values()].map((m) => `${m.ref.messageId}:${viewText(m.view)}`);
    const lists: string[] = [];
    for (const id of plans.keys()) {
      const r = await hh.flow.get(id);
      lists.push(`${id}:${JSON.stringify((r?.alerts ?? []).map((a) => [a.id, a.resolvedAt ?? null]))}`);
    }
    return { messages, lists };
  };

  /** Sends one delivery of `inc` to the replicas (both at once when `both`) and records what came back. */
  const send = async (
    inc: Incident,
    status: 'firing' | 'resolved',
    title: string,
    how: 'one' | 'both',
  ): Promise<AlertResult[][]> => {
    if (status === 'firing' && inc.state === 'resolved') inc.occurrence += 1;
    const alerts = delivery(hh, inc, status, title);
    const targets = how === 'both' ? replicas : [pick(replicas)];
    const answers = await Promise.all(targets.map((r) => r.handleWebhook(inc.sender, alerts)));
    await idle();
    log.push(
      `   → ${answers.map((a) => a.map((r) => r.outcome + (r.retry === true ? '(retry)' : '')).join(',')).join(' | ')}`,
    );
    for (const a of answers) await record(inc, status, a);
    // Invariant (step 2, "a delivery handled twice changes nothing the second time"): of the same
    // delivery handled by both replicas at once, at most one handling posts, lists or resolves.
    if (how === 'both') {
      for (const [i] of alerts.entries()) {
        const acting = answers.filter((a) => ACTING.has(a[i]?.outcome ?? ''));
        expect(
          acting.length,
          `both replicas acted on alert ${i}: ${JSON.stringify(answers)}`,
        ).toBeLessThanOrEqual(1);
      }
    }
    const retryable = answers.some((a) => a.some((r) => r.outcome === 'failed' && r.retry === true));
    // A copy answered 503 is sent again by its sender, whatever the other replica answered its copy.
    if (retryable) inc.owed = { status, title };
    else {
      inc.owed = undefined;
      inc.last = { status, title };
      inc.lastAt = hh.clock.now();
      inc.state = status;
      inc.resolvedOk = status === 'resolved' && answers.some((a) => a.some((r) => r.outcome === 'resolved'));
    }
    return answers;
  };

  const record = async (inc: Incident, status: 'firing' | 'resolved', results: readonly AlertResult[]) => {
    for (const r of results) {
      // Invariant ("outcome is one of"): every answer is a documented outcome, `pending` excluded (the
      // replicas' clock does not move while they handle a delivery, so no answer budget runs out).
      expect(DOCUMENTED.has(r.outcome), `undocumented outcome ${r.outcome}`).toBe(true);
      expect(r.outcome).not.toBe('pending');
      // Invariant (step 1): an alert naming an unknown environment is unmapped, nothing else.
      if (inc.env === 'qa') expect(r.outcome).toBe('unmapped');
      if (r.planId !== undefined && !plans.has(r.planId)) plans.set(r.planId, new Set());
      if (r.outcome === 'suggested') {
        suggestedTotal += 1;
        const n = (inc.suggested.get(inc.occurrence) ?? 0) + 1;
        inc.suggested.set(inc.occurrence, n);
        // Invariant (step 2, storm control): one suggestion per incident (occurrence), across replicas.
        expect(n, `incident inc${inc.n} occurrence ${inc.occurrence} suggested twice`).toBe(1);
        // Invariant ("one suggestion per channel"): a plan record posts once; another message for
        // the same plan id needs a new record (the old one expired and a later alert made it again).
        const rec = await hh.flow.get(r.planId ?? '');
        const generation = `${rec?.createdAt}:${rec?.generation}`;
        const seen = plans.get(r.planId ?? '') ?? new Set();
        expect(seen.has(generation), `plan ${r.planId} (${generation}) suggested twice`).toBe(false);
        seen.add(generation);
      }
      if (status === 'firing' && (r.outcome === 'suggested' || r.outcome === 'grouped'))
        inc.planId = r.planId;
      if (r.outcome === 'resolved') inc.resolvedAt.push(hh.clock.now());
    }
  };

  /** The invariants on what chat shows, after every step. */
  const check = async () => {
    // Every message in Slack is one `suggested` answer (notes are off, no job runs): no duplicate post.
    expect(hh.slack.messages.size, 'messages posted vs `suggested` answers').toBe(suggestedTotal);
    // Nothing shows an unmapped alert or a DatasourceError.
    for (const m of hh.slack.messages.values()) {
      const text = viewText(m.view);
      for (const t of unmappedTitles) expect(text).not.toContain(t);
    }
    for (const [planId] of plans) {
      const rec = await hh.flow.get(planId);
      if (rec === undefined) continue;
      const list = rec.alerts ?? [];
      for (const entry of list) {
        // A suggestion's listed alerts are the incidents that pointed at it, of its environment.
        const inc = incidentOfTitle(entry.alert.title);
        expect(inc, `plan ${planId} lists an alert nobody sent: ${entry.alert.title}`).toBeDefined();
        expect(inc?.env).toBe(rec.plan.environment);
        // Resolved only after a RESOLVED of that incident was answered `resolved` (never before).
        if (entry.resolvedAt !== undefined)
          expect(
            inc?.resolvedAt.some((at) => at >= entry.at),
            `${entry.alert.title} shown resolved on ${planId} before it resolved`,
          ).toBe(true);
      }
      // Once its latest occurrence resolved, the incident's entry on the plan it was last listed on says so.
      for (const inc of incidents) {
        if (inc.planId !== planId || !inc.resolvedOk) continue;
        const entry = list.find((e) => incidentOfTitle(e.alert.title) === inc);
        if (entry !== undefined && list.length <= 50)
          expect(entry.resolvedAt, `inc${inc.n} resolved but ${planId} still shows it firing`).toBeDefined();
      }
      // The message says "resolved" exactly when every listed alert resolved (step 6), while the plan
      // can still be confirmed (a closed plan's message says only that the alert resolved).
      const all =
        list.length > 0 && list.every((e) => e.resolvedAt !== undefined) && (rec.alertsMore ?? 0) === 0;
      if (rec.state !== 'pending') continue;
      for (const s of rec.suggestions ?? []) {
        const m = s.ref === undefined ? undefined : hh.slack.messages.get(s.ref.messageId);
        if (m === undefined || s.dismissed === true) continue;
        const says = /All \d+ alerts resolved|The alert resolved/.test(viewText(m.view));
        expect(
          says,
          `${planId}'s message ${s.ref?.messageId} resolved banner (every alert resolved: ${all})`,
        ).toBe(all);
      }
    }
  };

  try {
    for (step = 1; step <= STEPS; step++) {
      const roll = rand();
      const firing = incidents.filter((i) => i.state === 'firing' && i.env !== 'qa');
      const owed = incidents.filter((i) => i.owed !== undefined);
      if (owed.length > 0 && rand() < 0.7) {
        const inc = pick(owed);
        const o = inc.owed as NonNullable<Incident['owed']>;
        log.push(`${step}. sender retries inc${inc.n} ${o.status}`);
        await send(inc, o.status, o.title, 'one');
      } else if (roll < 0.25 || incidents.length === 0) {
        // A new incident, or one that resolved firing again (a new occurrence).
        const resolved = incidents.filter((i) => i.state === 'resolved' && i.env !== 'qa');
        const inc =
          resolved.length > 0 && rand() < 0.3
            ? resolved[Math.floor(rand() * resolved.length)]
            : newIncident(pick(['production', 'production', 'preview', 'qa'] as const));
        if (inc === undefined) continue;
        if (inc.state === 'resolved') inc.startedAt = hh.clock.now() - int(0, 3) * MINUTE;
        const how = rand() < 0.4 ? 'both' : 'one';
        if (rand() < 0.25) hh.slack.failPost = 1;
        log.push(
          `${step}. inc${inc.n} (${inc.sender}, ${inc.env}) fires, to ${how}${hh.slack.failPost ? ', Slack fails once' : ''}`,
        );
        if (inc.env === 'qa') unmappedTitles.push(`inc${inc.n} `);
        await send(inc, 'firing', titleOf(inc), how);
        hh.slack.failPost = 0;
      } else if (roll < 0.35 && firing.length > 0) {
        // A storm: many alerts of one incident at once, spread over both replicas.
        const inc = pick(firing);
        const n = int(5, 15);
        log.push(`${step}. storm of ${n} alerts of inc${inc.n}`);
        const alerts = Array.from({ length: n }, (_, k) =>
          delivery(hh, inc, 'firing', `${titleOf(inc)} #${k}`),
        );
        const answers = await Promise.all(
          alerts.map((a, k) => replicas[k % 2]?.handleWebhook(inc.sender, a) ?? []),
        );
        await idle();
        log.push(`   → ${answers.map((a) => a.map((r) => r.outcome).join(',')).join(' ')}`);
        for (const a of answers) await record(inc, 'firing', a);
        inc.lastAt = hh.clock.now();
      } else if (roll < 0.5 && incidents.some((i) => i.last !== undefined)) {
        // A re-delivery of an incident's latest delivery, within its record's life: nothing changes.
        const candidates = incidents.filter(
          (i) =>
            i.last !== undefined && i.owed === undefined && hh.clock.now() - i.lastAt < 6 * HOUR - MINUTE,
        );
        if (candidates.length === 0) continue;
        const inc = pick(candidates);
        const last = inc.last as NonNullable<Incident['last']>;
        const how = rand() < 0.3 ? 'both' : 'one';
        log.push(`${step}. inc${inc.n} ${last.status} delivered again, to ${how}`);
        const before = await snapshot();
        const suggestedBefore = suggestedTotal;
        await send(inc, last.status, last.title, how);
        // Invariant ("a delivery handled twice changes nothing the second time").
        expect(await snapshot(), `re-delivery of inc${inc.n} changed what chat shows`).toEqual(before);
        expect(suggestedTotal).toBe(suggestedBefore);
      } else if (roll < 0.65 && firing.length > 0) {
        const inc = pick(firing);
        const how = rand() < 0.3 ? 'both' : 'one';
        log.push(`${step}. inc${inc.n} resolves, to ${how}`);
        await send(inc, 'resolved', titleOf(inc), how);
      } else if (roll < 0.72) {
        log.push(`${step}. Grafana DatasourceError`);
        unmappedTitles.push('DatasourceError');
        const answers = await pick(replicas).handleWebhook('grafana', datasourceError(hh));
        await idle();
        for (const r of answers) expect(r.outcome).toBe('ignored');
      } else if (roll < 0.85) {
        const env = pick(['production', 'preview'] as const);
        if (rand() < 0.75) {
          log.push(`${step}. deploy to ${env}`);
          await hh.platform.push({ environment: env });
          await hh.clock.advance(10_000);
          await hh.platform.settle();
          // Alerts from now on start after it went live (an alert that started before is not its).
          await hh.clock.advance(3 * MINUTE);
        } else {
          const snap = await hh.platform.snapshot(env);
          const target = snap.deployments.find(
            (d) =>
              d.id !== snap.environment.currentDeploymentId &&
              (d.status === 'ready' || d.status === 'standby'),
          );
          if (target === undefined) continue;
          log.push(`${step}. rollback ${env} to ${target.id} on the platform`);
          await hh.platform.rollback({ environment: env, targetId: target.id });
          await hh.clock.advance(10_000);
          await hh.platform.settle();
        }
        await idle();
      } else {
        const ms = pick([int(1, 60) * 1000, int(1, 60) * 1000, 11 * MINUTE, 6 * HOUR + MINUTE]);
        log.push(`${step}. clock +${ms / 1000}s`);
        await hh.clock.advance(ms);
        await idle();
        // An incident silent for 6 hours is forgotten: its next alert is a new occurrence.
        for (const inc of incidents)
          if (hh.clock.now() - inc.lastAt >= 6 * HOUR) {
            inc.occurrence += 1;
            if (inc.state === 'firing') inc.last = undefined;
          }
      }
      await check();
    }
  } catch (e) {
    const prefix = `seed ${seed} (RANDOM_SEED=${seed} replays it), step ${step}`;
    if (e instanceof Error) {
      e.message = `${prefix}: ${e.message}\nscript:\n${log.join('\n')}`;
      throw e;
    }
    throw new Error(`${prefix}: ${String(e)}\nscript:\n${log.join('\n')}`);
  }
}

const seeds =
  process.env.RANDOM_SEED !== undefined
    ? [Number(process.env.RANDOM_SEED)]
    : Array.from({ length: Number(process.env.ALERTS_SCRIPTS ?? SCRIPTS) }, (_, i) => 0xa1e7 + i * 7919);

describe('alert handling across two replicas (seeded random scripts)', () => {
  for (const seed of seeds) {
    it(`seed ${seed}: ${STEPS} random steps keep the documented invariants`, async () => {
      await replay(seed);
    }, 30_000);
  }
});
