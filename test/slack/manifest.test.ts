/**
 * manifest.yml is a valid Slack app manifest (Slack's published JSON schema, read from the shared
 * schemas beside the checkout) and declares every command, event and scope the handlers rely on.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  SLACK_BOT_EVENTS,
  SLACK_BOT_SCOPES,
  SLACK_COMMANDS,
  SLACK_EVENT_SCOPES,
} from '../../handlers/slack/needs.js';

const root = resolve(import.meta.dirname, '../..');
const schemaDir = resolve(root, '../shared/schemas/slack-manifest');
const REMOTE = 'https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/';

interface Manifest {
  features: {
    slash_commands: {
      command: string;
      url?: string;
      description: string;
      usage_hint?: string;
      should_escape?: boolean;
    }[];
  };
  oauth_config: { scopes: { bot: string[] } };
  settings: {
    event_subscriptions: { request_url: string; bot_events: string[] };
    interactivity: { is_enabled: boolean; request_url: string };
  };
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function validator() {
  // Slack's schema uses non-standard annotations ("regex", "_note"), so strict mode is off.
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  for (const v of ['1.0.0', '2.0.0']) {
    ajv.addSchema(
      readJson(join(schemaDir, 'schemas', `manifest.schema.${v}.json`)),
      `${REMOTE}manifest.schema.${v}.json`,
    );
  }
  return ajv.compile(readJson(join(schemaDir, 'manifest.schema.json')));
}

const raw = readFileSync(join(root, 'manifest.yml'), 'utf8');
const manifest = parse(raw) as Manifest;
const WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

describe('manifest.yml', () => {
  it('validates against Slack’s manifest schema', () => {
    const validate = validator();
    const valid = validate(manifest);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('the schema check can fail: a broken manifest is rejected', () => {
    const validate = validator();
    const broken = structuredClone(manifest);
    broken.features.slash_commands.push({ command: 'no-slash', description: '' });
    expect(validate(broken)).toBe(false);
  });

  it('declares every slash command the handlers register, unescaped, with a usage hint', () => {
    const declared = manifest.features.slash_commands;
    expect(declared.map((c) => c.command).sort()).toEqual([...SLACK_COMMANDS].sort());
    for (const c of declared) {
      expect(c.should_escape).toBe(false);
      expect(c.usage_hint?.length).toBeGreaterThan(0);
      expect(c.url).toBe('https://YOUR-HOST/slack/events');
    }
  });

  it('sends interactivity and events to the one Bolt path, with the events the code uses', () => {
    expect(manifest.settings.interactivity).toEqual({
      is_enabled: true,
      request_url: 'https://YOUR-HOST/slack/events',
    });
    expect(manifest.settings.event_subscriptions.request_url).toBe('https://YOUR-HOST/slack/events');
    expect(manifest.settings.event_subscriptions.bot_events).toEqual([...SLACK_BOT_EVENTS]);
  });

  it('subscribes to the messages of public and of private channels, each with its history scope (alert watching)', () => {
    const events = manifest.settings.event_subscriptions.bot_events;
    const scopes = manifest.oauth_config.scopes.bot;
    // Slack sends a private channel's messages as message.groups, and only with groups:history.
    expect(events).toEqual(expect.arrayContaining(['message.channels', 'message.groups']));
    expect(scopes).toEqual(expect.arrayContaining(['channels:history', 'groups:history']));
    for (const [event, scope] of Object.entries(SLACK_EVENT_SCOPES)) {
      expect(events).toContain(event);
      expect(scopes).toContain(scope);
    }
  });

  it('asks for exactly the bot scopes the code needs (minimal)', () => {
    expect([...manifest.oauth_config.scopes.bot].sort()).toEqual([...SLACK_BOT_SCOPES].sort());
  });

  it('the YOUR-HOST lines are counted right in its own comment and in docs/slack.md', () => {
    const lines = raw.split('\n').filter((l) => !l.trimStart().startsWith('#'));
    const hosts = lines.filter((l) => l.includes('YOUR-HOST'));
    const urls = hosts.filter((l) => /^\s+url: https:\/\/YOUR-HOST\/slack\/events$/.test(l));
    const requestUrls = hosts.filter((l) => /^\s+request_url: https:\/\/YOUR-HOST\/slack\/events$/.test(l));
    expect(urls.length + requestUrls.length).toBe(hosts.length); // nothing else to replace
    const [total, u, r] = [hosts.length, urls.length, requestUrls.length].map((n) => WORDS[n]);
    const comment = raw
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .map((l) => l.slice(1).trim())
      .join(' ');
    expect(comment).toContain(
      `replace YOUR-HOST (${total} places: the ${u} slash-command url lines and the ${r} request_url lines)`,
    );
    expect(comment).toContain(`delete those ${total} lines and set socket_mode_enabled: true`);
    const docs = readFileSync(join(root, 'docs/slack.md'), 'utf8').replace(/\s+/g, ' ');
    expect(docs).toContain(
      `replace \`YOUR-HOST\` (${total} places: the ${u} slash-command \`url\` lines and the ${r} \`request_url\` lines)`,
    );
    expect(docs).toContain(`delete the ${total} \`url\`/\`request_url\` lines`);
  });

  it('for Socket Mode, deleting those lines and setting socket_mode_enabled: true gives a valid manifest', () => {
    const socket = parse(
      raw
        .split('\n')
        .filter((l) => l.trimStart().startsWith('#') || !l.includes('YOUR-HOST'))
        .join('\n')
        .replace('socket_mode_enabled: false', 'socket_mode_enabled: true'),
    ) as Manifest & { settings: { socket_mode_enabled: boolean } };
    expect(socket.settings.socket_mode_enabled).toBe(true);
    expect(JSON.stringify(socket)).not.toContain('YOUR-HOST');
    const validate = validator();
    validate(socket);
    expect(validate.errors ?? []).toEqual([]);
  });
});
