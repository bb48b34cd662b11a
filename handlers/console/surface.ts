/**
 * The local console as a chat surface: one channel timeline held in memory (bounded), live to every
 * open page through server-sent events. It implements the Reporter port (progress edits the original
 * message, like chat.update in Slack) and posts notices and alert suggestions. Messages are rendered
 * from the same view model as Slack and Discord (src/views/console.ts). The channel begins empty with
 * the process; a switch whose messages were in the channel of a previous run gets a new one here.
 */

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ChatPoster } from '../../src/chat-sinks.js';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import type { Plan } from '../../src/domain/plan.js';
import { type MessageRef, type Progress, progressStamp, type Reporter } from '../../src/progress.js';
import { type ConsoleMessage, renderConsole } from '../../src/views/console.js';
import { progressView } from '../../src/views/model.js';
import type { MessageView } from '../../src/views/types.js';

export const CONSOLE_CHANNEL = 'console';

export interface ConsoleEntry {
  readonly id: string;
  readonly at: number;
  readonly author: { readonly kind: 'user' | 'bot'; readonly name: string };
  readonly text?: string;
  readonly message?: ConsoleMessage;
  /** Only this user sees it (ephemeral replies). */
  readonly visibleTo?: string;
  /** Replies shown under another entry (alert suggestions under the alert). */
  readonly threadOf?: string;
  readonly editedAt?: number;
}

export interface ConsoleSurfaceOptions {
  readonly clock?: Clock;
  /** How many entries the timeline keeps. */
  readonly limit?: number;
  /** Looks up the plan of a job's progress so progress views can name domains and deployments. */
  readonly planLookup?: (planId: string) => Promise<Plan | undefined>;
}

/** When a console message was posted, read from its id (`m_<ms in base 36>_<hex>`); undefined if not one. */
function postedAt(messageId: string): number | undefined {
  const m = /^m_([0-9a-z]+)_[0-9a-f]+$/.exec(messageId);
  return m?.[1] === undefined ? undefined : Number.parseInt(m[1], 36);
}

/** Said on the message a switch from before this process started gets here (see `report`). */
const CARRIED_NOTE =
  'Asked for before Switchyard last started: its message went with the old channel (the channel lives in memory), so this switch shows here.';

export class ConsoleSurface implements Reporter {
  /** When this channel began: the process started, with an empty channel (it lives in memory only). */
  readonly startedAt: number;
  /** How many of the oldest entries the timeline has dropped to keep its bound. */
  private droppedCount = 0;
  private readonly entries: ConsoleEntry[] = [];
  private readonly emitter = new EventEmitter();
  private readonly clock: Clock;
  private readonly limit: number;
  private readonly planLookup: ((planId: string) => Promise<Plan | undefined>) | undefined;
  /**
   * Entry id → the job whose progress it shows, and that progress' stamp (`Progress.updatedAt`): a
   * click's view of that job then no longer applies, nor an older state of it.
   */
  private readonly progressOf = new Map<string, { readonly jobId: string; readonly at: number }>();
  /**
   * Switches whose console messages were all posted before this channel began (by this process's
   * previous run, or another replica's console then), each with the message posted here in their
   * place: job id → entry id.
   */
  private readonly carried = new Map<string, string>();

  constructor(opts: ConsoleSurfaceOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.startedAt = this.clock.now();
    this.limit = opts.limit ?? 500;
    this.planLookup = opts.planLookup;
    this.emitter.setMaxListeners(1000);
  }

  /** Entries a user may see, oldest first. */
  timeline(user?: string): ConsoleEntry[] {
    return this.entries.filter((e) => e.visibleTo === undefined || e.visibleTo === user);
  }

  get(id: string): ConsoleEntry | undefined {
    return this.entries.find((e) => e.id === id);
  }

  /** How many of the oldest entries are gone to keep the timeline's bound (`limit`). */
  get dropped(): number {
    return this.droppedCount;
  }

  /** How many entries the timeline keeps. */
  get kept(): number {
    return this.limit;
  }

  /** Subscribes to added and edited entries; returns the unsubscribe function. */
  onEntry(listener: (entry: ConsoleEntry) => void): () => void {
    this.emitter.on('entry', listener);
    return () => this.emitter.off('entry', listener);
  }

  private newId(): string {
    return `m_${this.clock.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  }

  private add(entry: ConsoleEntry): ConsoleEntry {
    this.entries.push(entry);
    if (this.entries.length > this.limit) {
      const gone = new Set(this.entries.splice(0, this.entries.length - this.limit).map((e) => e.id));
      this.droppedCount += gone.size;
      for (const id of gone) this.progressOf.delete(id);
      for (const [jobId, id] of this.carried) if (gone.has(id)) this.carried.delete(jobId);
    }
    this.emitter.emit('entry', entry);
    return entry;
  }

  /** What a person typed. */
  postUser(name: string, text: string, visibleTo?: string): ConsoleEntry {
    return this.add({
      id: this.newId(),
      at: this.clock.now(),
      author: { kind: 'user', name },
      text,
      ...(visibleTo === undefined ? {} : { visibleTo }),
    });
  }

  /** A bot message rendered from a view; returns its message ref (for progress edits). */
  postView(view: MessageView, opts: { visibleTo?: string; threadOf?: string } = {}): MessageRef {
    const entry = this.add({
      id: this.newId(),
      at: this.clock.now(),
      author: { kind: 'bot', name: 'Switchyard' },
      message: renderConsole(view),
      ...(opts.visibleTo === undefined ? {} : { visibleTo: opts.visibleTo }),
      ...(opts.threadOf === undefined ? {} : { threadOf: opts.threadOf }),
    });
    return {
      surface: 'console',
      channel: CONSOLE_CHANNEL,
      messageId: entry.id,
      ...(opts.threadOf === undefined ? {} : { threadId: opts.threadOf }),
    };
  }

  /** Replaces a bot message in place; false when it is gone. */
  updateView(id: string, view: MessageView): boolean {
    const i = this.entries.findIndex((e) => e.id === id);
    const old = this.entries[i];
    if (i < 0 || !old) return false;
    const entry: ConsoleEntry = { ...old, message: renderConsole(view), editedAt: this.clock.now() };
    this.entries[i] = entry;
    this.emitter.emit('entry', entry);
    return true;
  }

  /**
   * A click's view of a message (Confirmed…, waiting for a second person, …), dropped when the message
   * already shows the progress of `jobId`, the job the click made or joined: the job's progress, which
   * this process applies as workers publish it, never gives way to a view from before it (as on Slack
   * and Discord). Returns whether the view was applied.
   */
  updateClickView(id: string, view: MessageView, jobId: string | undefined): boolean {
    if (jobId !== undefined && this.progressOf.get(id)?.jobId === jobId) return false;
    return this.updateView(id, view);
  }

  /** The ChatPoster of the console (alert suggestions and notices). */
  poster(): ChatPoster {
    return {
      surface: 'console',
      post: async (_channel, view, opts) =>
        this.postView(view, opts?.threadId === undefined ? {} : { threadOf: opts.threadId }),
      update: async (ref, view) => {
        this.updateView(ref.messageId, view);
      },
    };
  }

  /**
   * Reporter: edits every console message following the job. An intermediate state older than the
   * one a message shows of the same job is not applied: a click shows the job's progress so far on a
   * message that follows the job only from then on (ChatService's `ClickReply.progress`), and a state
   * the job published before, still being delivered, must not replace it.
   */
  async report(progress: Progress, messages: readonly MessageRef[]): Promise<void> {
    const mine = messages.filter((m) => m.surface === 'console');
    if (mine.length === 0) return;
    const plan = this.planLookup ? await this.planLookup(progress.planId).catch(() => undefined) : undefined;
    const view = progressView(progress, plan);
    const ids = mine.map((m) => m.messageId).filter((id) => this.get(id) !== undefined);
    const carried = this.carried.get(progress.jobId);
    if (carried !== undefined) ids.push(carried);
    else if (
      ids.length === 0 &&
      mine.some((m) => (postedAt(m.messageId) ?? this.startedAt) < this.startedAt)
    ) {
      // Every message of the job is from before this channel began (a switch handed back to the queue
      // at a shutdown and resumed now, or one confirmed before a restart that runs now): they are gone
      // with the old channel, so the job gets a message here, as a confirmation would have shown it.
      // Not for a message posted since (another replica's, or one pushed out of the timeline).
      const ref = this.postView(this.carriedView(view));
      this.carried.set(progress.jobId, ref.messageId);
      this.progressOf.set(ref.messageId, { jobId: progress.jobId, at: progressStamp(progress) });
      return;
    }
    for (const id of ids) {
      const shown = this.progressOf.get(id);
      // A job's end always applies (its stamp may come from another worker's clock than the state shown).
      const older = shown?.jobId === progress.jobId && progress.updatedAt < shown.at;
      if (older && progress.outcome === undefined) continue;
      // Kept at its stamp (`progressStamp`: 0 for a state the worker did not report, which the worker's
      // first states always replace).
      if (this.updateView(id, id === carried ? this.carriedView(view) : view))
        this.progressOf.set(id, { jobId: progress.jobId, at: progressStamp(progress) });
    }
  }

  /** A job's progress view on the message posted for it here in place of one from before the start. */
  private carriedView(view: MessageView): MessageView {
    return { ...view, blocks: [{ type: 'context', spans: [{ text: CARRIED_NOTE }] }, ...view.blocks] };
  }
}
