/**
 * handlers/slack/commands/run.ts: a deploy platform fault met by a Slack command is logged as one WARN
 * line without a stack, as the console and Discord log it (logCommandFault, src/views/fault.ts); a
 * fault of another kind stays an ERROR with the error. The answer says nothing was switched, except for
 * `/deployments`, which only reads.
 */
import { Writable } from 'node:stream';
import type { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { type CommandArgs, runCommand } from '../../handlers/slack/commands/run.js';
import type { SlackHandlerDeps } from '../../handlers/slack/context.js';
import type { UserGroupResolver } from '../../handlers/slack/groups.js';
import type { SlackReporter } from '../../handlers/slack/reporter.js';
import { WorkQueue } from '../../handlers/slack/work.js';
import type { ChatService, CommandName } from '../../src/chat.js';
import { SwitchyardError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { logCommandFault } from '../../src/views/fault.js';

/** Runs a Slack slash command whose handling meets a platform fault; what it answered and logged. */
async function commandMeetingFault(name: CommandName) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  const responses: unknown[] = [];
  const chat = {
    command: async () => {
      throw new SwitchyardError(
        'platform_unavailable',
        'POST http://127.0.0.1:9/v2/x: connect ECONNREFUSED',
        {
          retry: true,
        },
      );
    },
  } as unknown as ChatService;
  const work = new WorkQueue({ logger: silentLogger });
  const deps: SlackHandlerDeps = {
    chat,
    flow: { jobReported: async () => false },
    reporter: { report: async () => undefined } as unknown as SlackReporter,
    groups: {} as unknown as UserGroupResolver,
    work,
    posts: {} as unknown as WebClient,
    metrics: createMetrics(),
    logger,
  };
  await runCommand(deps, name, {
    ack: async () => undefined,
    respond: async (r: unknown) => {
      responses.push(r);
    },
    client: {} as WebClient,
    command: {
      command: `/${name}`,
      text: 'production',
      user_id: 'U0ALICE',
      user_name: 'alice',
      channel_id: 'C0X',
    },
  } as unknown as CommandArgs);
  await work.idle();
  return { responses, lines };
}

describe('Slack command fault logging', () => {
  it('logs a platform_unavailable command fault as WARN without a stack, as the console and Discord do', async () => {
    const { responses, lines } = await commandMeetingFault('rollback');
    expect(JSON.stringify(responses)).toContain(
      'the deploy platform could not be reached: platform_unavailable',
    );
    expect(JSON.stringify(responses)).toContain('Nothing was switched by this request.');
    const fault = lines.find((l) => String(l.msg).includes('failed'));
    expect(fault?.levelName).toBe('warn');
    expect(JSON.stringify(fault)).not.toContain('stack');
  });

  it('a /deployments fault (a read) does not say that nothing was switched', async () => {
    const { responses } = await commandMeetingFault('deployments');
    const said = JSON.stringify(responses);
    expect(said).toContain('Switchyard could not run /deployments');
    expect(said).toContain('The error is in the Switchyard logs.');
    expect(said).not.toContain('Nothing was switched');
  });

  it('masks credentials and tokens the platform fault quotes in its WARN line', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ level: 'info', destination });
    const fault = new SwitchyardError(
      'platform_http',
      'GET https://ops:hunter2@unkey.internal/v2/deployments answered 401 (Bearer unkey_3ZabcdefGHIJKLmn)',
    );
    logCommandFault(logger, fault, { command: 'rollback' }, 'command failed');
    const line = lines.join('');
    expect(line).toContain('"levelName":"warn"');
    expect(line).toContain('https://***@unkey.internal/v2/deployments');
    expect(line).not.toContain('hunter2');
    expect(line).not.toContain('unkey_3ZabcdefGHIJKLmn');
  });
});
