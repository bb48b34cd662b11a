/**
 * Posting without a command: alert suggestions (issue 7) and deployment notices (issue 9) go out through
 * one small port, `ChatPoster`, that each chat surface implements (post a view to a channel, edit it).
 * The suggestion sink here is the single implementation of the alerts' SuggestionSink for every surface:
 * it renders the same confirmation view `/rollback` shows (with the alert context and Dismiss) and hands
 * the posted message to Flow so the switch's progress edits it. A resolved alert edits its suggestion,
 * unless the suggestion was confirmed: then the message shows the switch and is left alone.
 */

import type {
  RefreshOptions,
  SuggestionDestination,
  SuggestionInput,
  SuggestionSink,
} from './alerts/service.js';
import { type ChatService, dismissedView } from './chat.js';
import type { Plan } from './domain/plan.js';
import { isPermanentChatError, PermanentChatError } from './errors.js';
import type { Flow } from './flow.js';
import type { PlanRecord, PlanSuggestion } from './plan-store.js';
import type { MessageRef, Progress } from './progress.js';
import { progressView } from './views/model.js';
import type { MessageView } from './views/types.js';

/** How `ChatPoster.update` places its view among the message's other edits. */
export interface UpdateOptions {
  /** The view supersedes the message's switch progress, its final state included (at this time). */
  readonly supersedesProgress?: { readonly at: number };
}

/** The port every chat surface implements for unsolicited messages. */
export interface ChatPoster {
  readonly surface: 'slack' | 'discord' | 'console';
  /**
   * Posts a message visible to the channel (threaded under `threadId` when given). `key` names the
   * logical post, the same for every retry of it: a surface that can tell a re-send (Discord's message
   * nonce, within its few minutes) answers the message an earlier try posted instead of posting again.
   * Slack and the console have no such thing and ignore it.
   */
  post(channel: string, view: MessageView, opts?: { threadId?: string; key?: string }): Promise<MessageRef>;
  /**
   * Replaces a message this poster posted. A surface orders edits per message and drops a view that
   * comes after the message showed a switch's progress or final state (a late click, an out-of-order
   * view); `supersedesProgress` (with the time it was decided, on the caller's clock) makes this view
   * one that comes after the job's final state instead, so it is shown even over it: an update of a
   * failed job's message once the platform completed its switch later (src/notices.ts `jobUpdates`).
   */
  update(ref: MessageRef, view: MessageView, opts?: UpdateOptions): Promise<void>;
  /**
   * Whether a failed `post` may succeed if tried again later (the API unreachable, a 5xx after the
   * SDK's own retries) or was refused for good (no access, unknown channel, invalid token). Callers
   * that retry treat a poster without it as "may pass".
   */
  retryable?(error: unknown): boolean;
}

/** A plain informational message. */
export function textView(
  title: string,
  lines: readonly string[],
  tone: MessageView['tone'] = 'info',
): MessageView {
  return {
    kind: 'notice',
    tone,
    title,
    summary: title,
    blocks: lines.map((line) => ({ type: 'text' as const, spans: [{ text: line }] })),
    buttons: [],
    ephemeral: false,
  };
}

/** Runs a poster call, turning a refusal the poster calls final into a PermanentChatError. */
async function classified<T>(poster: ChatPoster, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw poster.retryable?.(e) === false ? new PermanentChatError(e) : e;
  }
}

/** How many times `refresh` edits again while what its messages must show keeps changing under it. */
const REFRESH_ROUNDS = 10;

/** What a plan's suggestion messages must show, and a stamp that changes whenever that does. */
async function shownState(
  flow: Flow,
  planId: string,
): Promise<{ record: PlanRecord; progress: Progress | undefined; stamp: string } | undefined> {
  const record = await flow.get(planId);
  if (record === undefined) return undefined;
  const progress =
    record.state === 'enqueued' && record.jobId !== undefined
      ? await flow.jobProgress(record.jobId).catch(() => undefined)
      : undefined;
  const stamp = [
    record.state,
    record.alertsVersion ?? 0,
    progress?.updatedAt ?? '',
    progress?.outcome ?? '',
  ].join('|');
  return { record, progress, stamp };
}

/**
 * Whether a suggestion has a thread slot of its own (`surface:channel:thread`), which plans recorded by
 * an older Switchyard have: such a message shows its own alert only (see `refresh`). A suggestion now
 * has one slot per channel (`suggestionSlot`), threaded or not, and lists the plan's alerts.
 */
function threaded(s: PlanSuggestion): boolean {
  return s.slot.split(':').length > 2;
}

/**
 * The view of one suggestion message of a plan in its current state (`refresh` renders a confirmed
 * plan's only once its switch has ended: its final state).
 */
function suggestionView(
  chat: ChatService,
  seen: { record: PlanRecord; progress: Progress | undefined },
  s: PlanSuggestion,
): MessageView {
  const { record, progress } = seen;
  if (record.state === 'enqueued' && progress !== undefined) return progressView(progress);
  if (s.dismissed === true) return dismissedView(record.plan as Plan, s.dismissedBy ?? 'someone');
  return chat.confirmation(record, { alertId: s.alertId, alone: threaded(s) });
}

/** One SuggestionSink for one surface, over its ChatPoster. */
export function suggestionSink(poster: ChatPoster, chat: ChatService, flow: Flow): SuggestionSink {
  const mine = (ds: readonly SuggestionDestination[]) => ds.filter((d) => d.surface === poster.surface);
  return {
    async suggest(input: SuggestionInput): Promise<MessageRef[]> {
      const record = input.kind === 'suggestion' && input.plan ? await flow.get(input.plan.id) : undefined;
      // A thread's suggestion lists the plan's alerts as a channel's does: it is the channel's one
      // message for the rollback, and the channel's later alerts are listed on it (`suggestionSlot`).
      const view: MessageView =
        record === undefined
          ? textView(`Alert on ${input.environment}: ${input.alert.title}`, [input.sentence], 'warning')
          : chat.confirmation(
              record,
              input.alertId !== undefined
                ? { alertId: input.alertId }
                : input.alertContext
                  ? { alert: input.alertContext }
                  : undefined,
            );
      const refs: MessageRef[] = [];
      for (const d of mine(input.destinations)) {
        const ref = await classified(poster, () =>
          poster.post(d.channel, view, d.threadId === undefined ? {} : { threadId: d.threadId }),
        );
        refs.push(ref);
        if (input.plan === undefined) continue;
        // The plan may be a switch under way: one confirmed while the alert was handled (the alert
        // service then posts for it, and its job edits what shows it). If that job ended before this
        // message was attached, its worker never saw the message: show the end here, or the message
        // stays "Confirmed…" with nothing to follow (as a /rollback posted late does, see chat.attach).
        const ended = await chat.attach(input.plan.id, ref);
        if (ended !== undefined) {
          // The post went out: a failed edit must not turn it into a failed post (its alert would
          // be posted again), so the message keeps the view it was posted with.
          await poster.update(ref, progressView(ended)).catch(() => undefined);
        }
      }
      return refs;
    },
    async refresh(planId: string, opts: RefreshOptions = {}): Promise<void> {
      // An edit lands a while after it was rendered, and what the plan's messages must show may change
      // meanwhile (a click, another alert, the switch's end). So after editing, look again: when
      // anything that decides what they show changed, edit again, showing that (a "repair": then
      // dismissed messages are rendered too, since an edit of ours may have landed on them). The last
      // edit of ours to land is therefore of the latest state. Every message is tried; the first
      // failure (a transient one first) is thrown at the end.
      let repair = false;
      const failures: unknown[] = [];
      for (let round = 0; round < REFRESH_ROUNDS; round++) {
        const seen = await shownState(flow, planId);
        if (seen === undefined) break;
        // A confirmed plan's messages show its switch: the job's reporter edits them. Only once the
        // switch has ended, an edit of ours may have landed over its final state: then show that.
        if (seen.record.state === 'enqueued' && (!repair || seen.progress?.outcome === undefined)) break;
        const open = seen.record.state === 'pending' || seen.record.state === 'awaiting_approval';
        for (const s of seen.record.suggestions ?? []) {
          const ref = s.ref;
          if (ref?.surface !== poster.surface) continue;
          // A thread slot of an older record shows its own alert only, so a longer list is not its
          // business (a storm of chat alerts would otherwise edit every such thread for every alert);
          // its alert is, and so is the plan closing.
          if (!repair && (s.dismissed === true || (open && threaded(s) && s.alertId !== opts.alertId)))
            continue;
          const view = suggestionView(chat, seen, s);
          // Whoever asked hears how each edit went: a message refused for good (deleted, or in a
          // channel this bot no longer reaches) shows nothing, whatever the plan lists.
          try {
            await classified(poster, () => poster.update(ref, view));
            opts.edited?.(ref);
          } catch (e) {
            failures.push(e);
            opts.edited?.(ref, e);
          }
        }
        repair = true;
        const now = await shownState(flow, planId);
        if (now === undefined || now.stamp === seen.stamp) break;
      }
      if (failures.length > 0) throw failures.find((e) => !isPermanentChatError(e)) ?? failures[0];
    },
    async close(old: PlanRecord): Promise<void> {
      // A confirmed plan's messages show its switch (the job edits them), whatever replaced it.
      if (old.state === 'enqueued') return;
      const failures: unknown[] = [];
      for (const s of old.suggestions ?? []) {
        const ref = s.ref;
        if (ref?.surface !== poster.surface || s.dismissed === true) continue;
        const view = chat.confirmation(old, { alertId: s.alertId, alone: threaded(s) });
        try {
          await classified(poster, () => poster.update(ref, view));
        } catch (e) {
          failures.push(e);
        }
      }
      if (failures.length > 0) throw failures[0];
    },
    async resolved(refs, input): Promise<void> {
      const record = input.planId ? await flow.get(input.planId) : undefined;
      // Confirmed: the message is the switch's progress (or its final state) and stays so. Replacing
      // it with the resolved note would hide what happened and still ask whether to roll back.
      if (record?.state === 'enqueued') return;
      const view =
        record && (record.state === 'pending' || record.state === 'awaiting_approval')
          ? chat.confirmation(record, { alertResolved: true })
          : textView(
              `Resolved: ${input.alert.title}`,
              [`The alert on ${input.environment} resolved.`, ...(input.sentence ? [input.sentence] : [])],
              'success',
            );
      for (const ref of refs) {
        if (ref.surface === poster.surface) await classified(poster, () => poster.update(ref, view));
      }
    },
    async linkRunningJob(input): Promise<MessageRef[]> {
      const view = textView(
        `Alert on ${input.environment}: ${input.alert.title}`,
        [
          `A switch of ${input.environment} is already running (job ${input.jobId}); its message shows the progress.`,
        ],
        'info',
      );
      const refs: MessageRef[] = [];
      for (const d of mine(input.destinations)) {
        refs.push(
          await poster.post(d.channel, view, d.threadId === undefined ? {} : { threadId: d.threadId }),
        );
      }
      return refs;
    },
  };
}
