/**
 * The local console as a chat surface: one channel timeline held in memory (bounded), live to every
 * open page through server-sent events. It implements the Reporter port (progress edits the original
 * message, like chat.update in Slack) and posts notices and alert suggestions. Messages are rendered
 * from the same view model as Slack and Discord (src/views/console.ts).
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

export class ConsoleSurface implements Reporter {
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

  constructor(opts: ConsoleSurfaceOptions = {}) {
    this.clock = opts.clock ?? systemClock;
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
      for (const gone of this.entries.splice(0, this.entries.length - this.limit))
        this.progressOf.delete(gone.id);
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
    for (const ref of mine) {
      const shown = this.progressOf.get(ref.messageId);
      // A job's end always applies (its stamp may come from another worker's clock than the state shown).
      const older = shown?.jobId === progress.jobId && progress.updatedAt < shown.at;
      if (older && progress.outcome === undefined) continue;
      // Kept at its stamp (`progressStamp`: 0 for a state the worker did not report, which the worker's
      // first states always replace).
      if (this.updateView(ref.messageId, view))
        this.progressOf.set(ref.messageId, { jobId: progress.jobId, at: progressStamp(progress) });
    }
  }
}
