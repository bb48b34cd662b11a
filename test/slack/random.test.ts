/**
 * A seeded random end-to-end test of the Slack surface: scripts of two or three people typing
 * `/rollback`, `/promote` and `/deployments` (valid, unknown environments, bad arguments), clicking the
 * buttons of the messages they got (permitted or not, twice in a row, at once, a delivery sent again
 * with Slack's retry headers), Slack answering `chat.update` / `chat.postMessage` with a 429 now and
 * then, and pushes and dashboard moves on the platform in between. Two bot replicas (deliveries go to
 * either one), a switch worker in a process of its own, the real Bolt app over the wire-level fake
 * Slack, real Redis and the local platform (test/slack/replicas.ts).
 *
 * After every step and at the end it checks the rules docs/slack.md states:
 * - every command and click is acknowledged: HTTP 200 within Slack's 3 s;
 * - each delivery is answered once: a command by one post or one ephemeral answer, a click by at most
 *   one ephemeral answer and one post; an Events API delivery Slack sends again (same `event_id`, retry
 *   headers, either replica) reaches the app's listeners once. Slack re-sends only Events API
 *   deliveries: a command or click sent again here (the same signed request, retry headers added) is
 *   a replay, answered 200 and not acted on, whichever replica it reaches;
 * - a refused click (`forbidden`, `self_approval`) changes nothing: no job, the message as it was, the
 *   clicker's ephemeral answer only; an unpermitted person's Confirm or Approve never makes a job;
 * - every switch job's messages end showing its final state, exactly as its progress renders;
 * - Slack took every post, edit and ephemeral answer (Block Kit limits: the fake checks them).
 *
 * Seeds: a fixed list by default. `RANDOM_SEED=<n>` replays one seed (`random`: a fresh one);
 * a failure prints its seed and the script run so far.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LocalPlatform } from '../../src/platform/local/platform.js';
import type { MessageRef, Progress } from '../../src/progress.js';
import { progressView } from '../../src/views/model.js';
import { renderSlack } from '../../src/views/slack.js';
import { buttonsOf, postSigned, type SlackHttpResult } from '../fakes/slack/requests.js';
import type { FakeSlack, RecordedResponse } from '../fakes/slack/server.js';
import { mulberry32 } from '../support/random.js';
import {
  REPLICAS_CHANNEL as CHANNEL,
  REPLICAS_SECRET,
  type Replica,
  type Replicas,
  startReplicas,
} from './replicas.js';

class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

interface Person {
  readonly id: string;
  readonly name: string;
}
const ALICE: Person = { id: 'U0ALICE', name: 'alice' };
const BOB: Person = { id: 'U0BOB', name: 'bob' };
/** On no allow list: production refuses her clicks; preview (no allow list, local platform) does not. */
const MALLORY: Person = { id: 'U0MALLORY', name: 'mallory' };

const SLACK_ACK_DEADLINE_MS = 3_000;
const DEFAULT_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const STEPS = 10;

/** What a person sees of a message, for comparing two states of it. */
const shown = (m: { text?: unknown; blocks?: unknown } | undefined): string =>
  `${String(m?.text ?? '')}\n${JSON.stringify(m?.blocks ?? [])}`;

/** The id the fake records a response URL's POSTs under. */
const responseId = (url: string): string => new URL(url).pathname.split('/')[3] ?? '';

/** The Switchyard code an ephemeral answer names (`forbidden`, `self_approval`, …), if any. */
function refusalCode(r: RecordedResponse): string | undefined {
  return /Nothing was changed\. Code: `?([a-z_]+)/.exec(JSON.stringify(r.body))?.[1];
}

/** How one step sends its request(s). */
type Delivery = 'once' | 'twice' | 'at-once' | 'redelivered';

/** One run: the replicas, the platform, what the script did so far, and the checks. */
class Run {
  readonly script: string[] = [];
  /** Messages the bot posted (ts), in order: what people can click. */
  readonly posted: string[] = [];
  private readonly replicas: Replica[];

  /** Channel messages (Events API) that reached the app's listeners, by ts, on any replica. */
  readonly eventsSeen = new Map<string, number>();
  private eventCounter = 0;
  /** Requests the replicas' Bolt apps are still handling. */
  private readonly handling = new Set<Promise<void>>();

  constructor(
    readonly rng: Rng,
    readonly r: Replicas,
    readonly local: LocalPlatform,
    replicas: Replica[],
    readonly people: readonly Person[],
  ) {
    this.replicas = replicas;
    // A listener beside Switchyard's own on each replica's Bolt app: it sees what passed the app's
    // middleware (signature check, Events API retry dedupe), as the alert watcher would. Bolt handles
    // an event after its ack, so each request's handling (`processEvent`) is followed to its end.
    for (const x of replicas) {
      const app = x.surface.slack.app;
      app.event('message', async ({ event }) => {
        const ts = (event as { ts?: unknown }).ts;
        if (typeof ts === 'string') this.eventsSeen.set(ts, (this.eventsSeen.get(ts) ?? 0) + 1);
      });
      const processEvent = app.processEvent.bind(app);
      app.processEvent = (event) => {
        const handled = processEvent(event);
        const settled = handled.then(
          () => undefined,
          () => undefined,
        );
        this.handling.add(settled);
        void settled.then(() => this.handling.delete(settled));
        return handled;
      };
    }
  }

  get fake(): FakeSlack {
    return this.r.fake;
  }

  private replica(): { replica: Replica; index: number } {
    const index = this.rng.int(this.replicas.length);
    const replica = this.replicas[index];
    if (replica === undefined) throw new Error('no replica');
    return { replica, index };
  }

  log(line: string): void {
    this.script.push(line);
  }

  /** Every replica's after-ack work and edits are done. */
  async idle(): Promise<void> {
    while (this.handling.size > 0) await Promise.all([...this.handling]);
    for (const x of this.replicas) await x.surface.idle();
  }

  async jobIds(): Promise<string[]> {
    const jobs = await this.q().queue.getJobs([
      'waiting',
      'active',
      'completed',
      'failed',
      'delayed',
      'prioritized',
    ]);
    return jobs.map((j) => String(j.id));
  }

  private first(): Replica {
    const first = this.replicas[0];
    if (first === undefined) throw new Error('no replica');
    return first;
  }

  private q() {
    return this.first().queue;
  }

  /** No switch running and no request being answered: what a message shows now stays. */
  async quiesce(): Promise<void> {
    await this.idle();
    for (const id of await this.jobIds()) await this.q().waitForEnd(id, 20_000);
    await this.idle();
  }

  private checkAck(what: string, res: SlackHttpResult): void {
    expect(res.status, `${what}: acknowledged with HTTP 200`).toBe(200);
    expect(res.ms, `${what}: acknowledged within Slack's 3 s`).toBeLessThan(SLACK_ACK_DEADLINE_MS);
  }

  private responsesTo(url: string): RecordedResponse[] {
    const id = responseId(url);
    return this.fake.responses.filter((x) => x.id === id);
  }

  /** Sends `body` to replicas as `delivery` says; resolves with every answer. */
  private async deliver(body: string, delivery: Delivery): Promise<SlackHttpResult[]> {
    // One signature for every delivery of it: the same request, as Slack would send it again.
    const timestamp = Math.floor(Date.now() / 1000);
    const send = (retry?: number) => {
      const { replica } = this.replica();
      return postSigned(
        replica.requests.url,
        REPLICAS_SECRET,
        body,
        'application/x-www-form-urlencoded',
        retry === undefined
          ? { timestamp }
          : {
              timestamp,
              headers: { 'X-Slack-Retry-Num': String(retry), 'X-Slack-Retry-Reason': 'http_timeout' },
            },
      );
    };
    switch (delivery) {
      case 'once':
        return [await send()];
      case 'redelivered':
        // Slack sends the very same request again (same body, same response URL), with its retry headers.
        return [await send(), await send(1)];
      default:
        throw new Error(`delivery ${delivery} is made by the caller`);
    }
  }

  // ── steps ───────────────────────────────────────────────────────────────────────────────────────

  async command(): Promise<void> {
    const person = this.rng.pick(this.people);
    const command = this.rng.pick(['/rollback', '/promote', '/deployments'] as const);
    const text = this.rng.pick([
      'production',
      'production',
      'preview',
      'nowhere',
      '',
      'production dep_nope',
      'production dep_x checkout is broken',
    ]);
    const delivery: Delivery = this.rng.chance(0.2) ? 'redelivered' : 'once';
    this.log(`${person.name}: ${command} ${JSON.stringify(text)} (${delivery})`);
    const postsBefore = this.fake.callsOf('chat.postMessage').length;
    const { body, responseUrl } = this.first().requests.slashCommandBody({
      command,
      text,
      userId: person.id,
      userName: person.name,
    });
    const answers = await this.deliver(body, delivery);
    for (const a of answers) this.checkAck(`${command} ${text}`, a);
    await this.idle();
    const posts = this.fake
      .callsOf('chat.postMessage')
      .slice(postsBefore)
      .filter((c) => c.response.ok === true);
    const ephemeral = this.responsesTo(responseUrl);
    this.log(`  → ${posts.length} post(s), ${ephemeral.length} ephemeral answer(s)`);
    // Answered once: a post in the channel, or an answer only the person sees. (Slack sends a slash
    // command once: a delivery made again here is a replay, acknowledged and not answered again.)
    expect(posts.length + ephemeral.length, `${command} ${text}: answered once`).toBe(1);
    for (const p of posts) this.posted.push(String(p.response.ts));
  }

  async click(): Promise<void> {
    if (this.posted.length === 0) return this.command();
    const ts = this.rng.pick(this.posted);
    const person = this.rng.pick(this.people);
    const buttons = buttonsOf([...(this.fake.message(CHANNEL, ts)?.blocks ?? [])]);
    const roll = this.rng.int(100);
    if (buttons.length === 0) {
      this.log(`${person.name}: nothing to click on ${ts}`);
      return;
    }
    // Confirm and Approve most often: they start switches.
    const preferred = buttons.filter((b) => /^sy1:(confirm|approve):/.test(b.actionId));
    const button = preferred.length > 0 && roll < 60 ? this.rng.pick(preferred) : this.rng.pick(buttons);
    const kind = button.actionId.split(':')[1] ?? '';
    const planId = button.actionId.split(':')[2] ?? '';
    const delivery = this.rng.pick<Delivery>(['once', 'once', 'once', 'twice', 'at-once', 'redelivered']);
    const other = this.rng.pick(this.people);
    const record =
      kind === 'confirm' || kind === 'approve' || kind === 'cancel'
        ? await this.flow().get(planId)
        : undefined;
    const environment = record?.plan.environment;
    const mayBeRefused = delivery === 'once' && (person === MALLORY || kind === 'approve');
    this.log(
      `${person.name}: clicks ${kind} on ${ts} (${environment ?? '-'}, ${delivery}${delivery === 'at-once' ? ` with ${other.name}` : ''})`,
    );
    // A click that may be refused is made on a still message: what it changes is then its own doing.
    if (mayBeRefused) await this.quiesce();
    const before = shown(this.fake.message(CHANNEL, ts));
    const jobsBefore = (await this.jobIds()).length;
    const postsBefore = this.fake.callsOf('chat.postMessage').length;
    const input = (p: Person) => ({
      actionId: button.actionId,
      ...(button.value === undefined ? {} : { value: button.value }),
      messageTs: ts,
      userId: p.id,
      userName: p.name,
    });
    const urls: string[] = [];
    const answers: SlackHttpResult[] = [];
    const one = async (p: Person) => {
      const { replica } = this.replica();
      const res = await replica.requests.click(input(p));
      urls.push(res.responseUrl);
      answers.push(res);
    };
    if (delivery === 'once') await one(person);
    else if (delivery === 'twice') {
      await one(person);
      await one(person);
    } else if (delivery === 'at-once') await Promise.all([one(person), one(other)]);
    else {
      const first = this.replicas[0];
      if (first === undefined) throw new Error('no replica');
      const { body, responseUrl } = first.requests.blockActionBody(input(person));
      urls.push(responseUrl);
      answers.push(...(await this.deliver(body, 'redelivered')));
    }
    for (const a of answers) this.checkAck(`${kind} click`, a);
    await this.idle();
    const posts = this.fake
      .callsOf('chat.postMessage')
      .slice(postsBefore)
      .filter((c) => c.response.ok === true);
    for (const p of posts) this.posted.push(String(p.response.ts));
    // A delivery made again is a replay: one request in all.
    const deliveries = delivery === 'redelivered' ? 1 : answers.length;
    const answered = [...new Set(urls)].map((u) => this.responsesTo(u));
    this.log(
      `  → ${posts.length} post(s), ephemeral: [${answered.map((rs) => rs.map((x) => refusalCode(x) ?? 'answer').join('+') || 'none').join(', ')}]`,
    );
    // At most one ephemeral answer per delivery (a replay shares its response URL, and gets none).
    for (const rs of answered)
      expect(rs.length, `${kind} click: one answer per delivery`).toBeLessThanOrEqual(1);
    expect(posts.length, `${kind} click: at most one post per delivery`).toBeLessThanOrEqual(deliveries);
    if (
      (kind === 'confirm' || kind === 'approve') &&
      person === MALLORY &&
      other === MALLORY &&
      environment === 'production'
    ) {
      expect((await this.jobIds()).length, 'an unpermitted Confirm/Approve makes no job').toBe(jobsBefore);
    }
    if (mayBeRefused) {
      const code = answered[0]?.[0] === undefined ? undefined : refusalCode(answered[0][0]);
      if (person === MALLORY && environment === 'production' && (kind === 'confirm' || kind === 'approve')) {
        expect(code, 'an unpermitted Confirm/Approve on production is refused').toBe('forbidden');
      }
      if (code === 'forbidden' || code === 'self_approval') {
        expect((await this.jobIds()).length, `refused (${code}): no job`).toBe(jobsBefore);
        expect(posts, `refused (${code}): nothing posted`).toEqual([]);
        await this.quiesce();
        expect(shown(this.fake.message(CHANNEL, ts)), `refused (${code}): the message is unchanged`).toBe(
          before,
        );
      }
    }
  }

  private flow() {
    const first = this.replicas[0];
    if (first === undefined) throw new Error('no replica');
    return first.flow;
  }

  rateLimit(): void {
    const method = this.rng.pick(['chat.update', 'chat.postMessage']);
    this.log(`slack: the next ${method} is answered 429 (Retry-After: 1)`);
    this.fake.rateLimit(method, 1, 1);
  }

  async platform(): Promise<void> {
    const environment = this.rng.pick(['production', 'production', 'preview']);
    if (this.rng.chance(0.5)) {
      this.log(`platform: push to ${environment}`);
      await this.local.push({ environment, message: 'random push' });
      return;
    }
    const snap = await this.local.snapshot(environment);
    const targets = snap.deployments.filter(
      (d) =>
        d.id !== snap.environment.currentDeploymentId && (d.status === 'ready' || d.status === 'standby'),
    );
    if (targets.length === 0) return;
    const target = this.rng.pick(targets);
    const action = this.rng.pick(['rollback', 'promote'] as const);
    this.log(`platform: ${action} ${environment} to ${target.id} on the dashboard`);
    try {
      await this.local[action]({ environment, targetId: target.id, requestedBy: 'dashboard' });
    } catch (e) {
      this.log(`  → refused: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * Someone writes in the channel: Slack's Events API delivers it to a replica and, when `redelivered`
   * (Slack got no timely ack), sends the same event (same `event_id`) again with its retry headers,
   * maybe to the other replica. It must reach the app's listeners once.
   */
  async channelMessage(): Promise<void> {
    const person = this.rng.pick(this.people);
    const again = this.rng.chance(0.6);
    this.eventCounter += 1;
    const ts = `1700000000.${String(this.eventCounter).padStart(6, '0')}`;
    const eventId = `Ev${this.rng.seed}x${this.eventCounter}`;
    this.log(`${person.name}: writes in the channel (event ${eventId}${again ? ', delivered again' : ''})`);
    const fields = { channel: CHANNEL, ts, text: 'checkout is down again', user: person.id };
    const first = await this.replica().replica.requests.message(fields, eventId);
    const answers = [first];
    if (again) {
      answers.push(
        await this.replica().replica.requests.message(fields, eventId, {
          headers: { 'X-Slack-Retry-Num': '1', 'X-Slack-Retry-Reason': 'http_timeout' },
        }),
      );
    }
    for (const a of answers) {
      expect(a.delivered, 'the app subscribes to message.channels').toBe(true);
      if (a.delivered) this.checkAck('message event', a);
    }
    await this.idle();
    expect(this.eventsSeen.get(ts), `event ${eventId}: handled once`).toBe(1);
  }

  async step(): Promise<void> {
    const roll = this.rng.int(100);
    if (roll < 28) await this.command();
    else if (roll < 75) await this.click();
    else if (roll < 83) await this.channelMessage();
    else if (roll < 91) this.rateLimit();
    else await this.platform();
  }

  // ── the end ─────────────────────────────────────────────────────────────────────────────────────

  /** Every switch job's messages show its final state, as the reporter renders it. */
  async checkFinalStates(): Promise<void> {
    await this.quiesce();
    for (const jobId of await this.jobIds()) {
      const progress: Progress | undefined = await this.q().progress(jobId);
      expect(progress?.outcome, `job ${jobId} ended`).toBeDefined();
      if (progress === undefined) continue;
      const expected = shown(renderSlack(progressView(progress), { mentions: true }));
      const refs: MessageRef[] = (await this.q().messages(jobId)) ?? [];
      this.log(
        `job ${jobId}: ${progress.outcome} ${progress.action} ${progress.environment} → ${progress.targetId}; messages ${refs.map((m) => m.messageId).join(', ')}`,
      );
      expect(refs.length, `job ${jobId} has messages`).toBeGreaterThan(0);
      for (const ref of refs) {
        expect(
          shown(this.fake.message(ref.channel, ref.messageId)),
          `message ${ref.messageId} of job ${jobId} shows its final state`,
        ).toBe(expected);
      }
    }
  }

  /** Slack took every post, edit and ephemeral answer (no Block Kit or size problem). */
  checkSlackTookEverything(): void {
    for (const c of this.fake.calls) {
      if (c.status === 429) continue;
      expect(
        { method: c.method, ok: c.response.ok, error: c.response.error, errors: c.response.errors },
        `${c.method} answered ok`,
      ).toEqual({ method: c.method, ok: true, error: undefined, errors: undefined });
    }
    for (const x of this.fake.responses)
      expect({ status: x.status, error: x.error }, 'response URL POST').toEqual({
        status: 200,
        error: undefined,
      });
  }
}

function seeds(): number[] {
  const env = process.env.RANDOM_SEED;
  if (env === undefined || env === '') return DEFAULT_SEEDS;
  if (env === 'random') return [Math.floor(Math.random() * 2 ** 31)];
  return env.split(',').map((s) => Number.parseInt(s, 10));
}

let r: Replicas | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
}, 60_000);

describe('Slack surface under a random mix of people, clicks, retries and rate limits', () => {
  for (const seed of seeds()) {
    it(`seed ${seed}`, async () => {
      const rng = new Rng(seed);
      const twoPersonRule = rng.chance(0.5);
      const people = rng.pick([
        [ALICE, BOB],
        [ALICE, MALLORY],
        [ALICE, BOB, MALLORY],
      ]);
      let local: LocalPlatform | undefined;
      r = await startReplicas({
        environments: {
          production: { twoPersonRule, allow: { slack: { users: [ALICE.id, BOB.id] } } },
        },
        platform: (l) => {
          local = l;
          return l;
        },
      });
      const replicas = [await r.replica(), await r.replica()];
      await r.worker();
      if (local === undefined) throw new Error('no platform');
      const run = new Run(rng, r, local, replicas, people);
      run.log(
        `seed ${seed}: ${people.map((p) => p.name).join(', ')}; two-person rule ${twoPersonRule ? 'on' : 'off'}`,
      );
      try {
        for (let i = 0; i < STEPS; i++) await run.step();
        await run.checkFinalStates();
        run.checkSlackTookEverything();
        if (process.env.SLACK_RANDOM_VERBOSE === '1') console.log(run.script.join('\n'));
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        throw new Error(
          `seed ${seed} failed (replay: RANDOM_SEED=${seed} npx vitest run --project redis test/slack/random.test.ts)\n${message}\nscript:\n  ${run.script.join('\n  ')}`,
          { cause: e },
        );
      }
    }, 60_000);
  }
});
