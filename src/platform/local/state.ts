/**
 * The embedded local platform's persisted state: one JSON document, zod-validated on load so a
 * hand-edited or corrupt state file gets a clear message instead of a crash, and written atomically
 * (temp file + rename) after every change so it survives a restart.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { formatIssues } from '../../config.js';
import { ConfigError } from '../../errors.js';

const slug = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a lowercase slug');

export const localDeploymentSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{3,64}$/, 'expected a deployment id of letters, digits, _ or -'),
  projectId: z.string().min(1),
  environment: slug,
  branch: z.string().min(1),
  commit: z.object({
    sha: z.string().regex(/^[0-9a-f]{7,40}$/, 'expected a hex commit sha'),
    message: z.string(),
    author: z.string(),
  }),
  createdAt: z.number(),
  readyAt: z.number().optional(),
  status: z.enum(['building', 'ready', 'failed', 'standby', 'stopped']),
  /** When it stopped holding live domains (starts the 30-minute standby timer in production). */
  stoppedServingAt: z.number().optional(),
  /** Last request any of its domains received (the six-hour idle rule in preview). */
  lastRequestAt: z.number().optional(),
  /** Build outcome decided at push time (operator "make a build fail"). */
  buildFails: z.boolean().optional(),
  buildDoneAt: z.number().optional(),
  /**
   * Push order: the state's `seq` when this platform created it by a push. Which of two pushes is newer
   * is decided by this, never by `createdAt` (the wall clock can step backwards). Absent on seeded
   * deployments and on those of state files written before it existed: every deployment that has one
   * was pushed after every one that has none.
   */
  pushSeq: z.number().int().nonnegative().optional(),
});
export type LocalDeployment = z.infer<typeof localDeploymentSchema>;

export const localDomainSchema = z.object({
  hostname: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
      'expected a lowercase hostname',
    ),
  stickiness: z.enum(['live', 'environment', 'branch', 'deployment']),
  environment: slug,
  branch: z.string().optional(),
  deploymentId: z.string().optional(),
});

export const localEnvironmentSchema = z.object({
  slug,
  kind: z.enum(['production', 'preview']),
  projectId: z.string().min(1),
  /** Branch whose pushes deploy to this environment's live domains. */
  productionBranch: z.string().min(1).optional(),
  rolledBack: z.boolean().default(false),
  rolledBackAt: z.number().optional(),
  rolledBackBy: z.string().optional(),
  /**
   * When the rolled-back period began: the first rollback since the last promote (a second rollback
   * moves `rolledBackAt`, not this). Absent in state files written before it existed.
   */
  rolledBackSince: z.number().optional(),
  currentDeploymentId: z.string().optional(),
});

export const liveEntrySchema = z.object({
  deploymentId: z.string(),
  since: z.number(),
  via: z.enum(['deploy', 'rollback', 'promote']),
  by: z.string().optional(),
  // Optional: state files written before it existed load as they are.
  jobId: z.string().optional(),
});

/**
 * A switch (rollback or promote) the platform accepted, as the operation status it reports. Kept in the
 * state file, written in the same document as the switch itself, so that after a restart an operation
 * reads as what happened to it: `succeeded` exactly when its switch is in the file. One still running
 * when the process stopped reads `failed` (interrupted) after the restart: see LocalPlatform.open.
 * One that ended because the platform stopped (a restart, a shutdown) switched nothing and says
 * `retryable: true`: asked again, the same switch may go through (OperationStatus.error.retryable).
 */
export const localOperationSchema = z.object({
  id: z.string().min(1),
  action: z.enum(['rollback', 'promote']),
  environment: slug,
  targetId: z.string().min(1),
  startedAt: z.number(),
  state: z.enum(['pending', 'reactivating', 'switching', 'succeeded', 'failed']),
  updatedAt: z.number(),
  error: z
    .object({
      code: z.string(),
      message: z.string(),
      /** Absent in state files written before it existed, and on a failure that is final. */
      retryable: z.boolean().optional(),
    })
    .optional(),
});
export type LocalOperation = z.infer<typeof localOperationSchema>;

export const localStateSchema = z.object({
  version: z.literal(1),
  project: z.object({ id: z.string().min(1), name: z.string().min(1) }),
  environments: z.array(localEnvironmentSchema).min(1, 'expected at least one environment'),
  deployments: z.array(localDeploymentSchema),
  domains: z.array(localDomainSchema),
  liveHistory: z.record(z.string(), z.array(liveEntrySchema)).default({}),
  /** Monotonic counter for ids and push order (`pushSeq`). */
  seq: z.number().int().nonnegative().default(0),
  /**
   * Recent switch operations, oldest first (bounded: see OPERATIONS_KEPT in platform.ts). Absent in
   * state files written before operations were kept: those load with none.
   */
  operations: z.array(localOperationSchema).default([]),
});
export type LocalState = z.infer<typeof localStateSchema>;

/** Validates a state document (from a file or the config's `local.seed`). */
export function parseLocalState(raw: unknown, source: string): LocalState {
  const result = localStateSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(`${source}: ${formatIssues(result.error, raw)}`, { source });
  const state = result.data;
  const envs = new Set(state.environments.map((e) => e.slug));
  const ids = new Set(state.deployments.map((d) => d.id));
  for (const d of state.deployments) {
    if (!envs.has(d.environment))
      throw new ConfigError(`${source}: deployment ${d.id} names unknown environment "${d.environment}"`);
  }
  for (const [i, d] of state.deployments.entries()) {
    // A push numbers its deployment from `seq`: one numbered beyond it would later rank as newer than
    // pushes made after it.
    if (d.pushSeq !== undefined && d.pushSeq > state.seq)
      throw new ConfigError(
        `${source}: deployments[${i}].pushSeq: got ${d.pushSeq}, expected at most seq (${state.seq})`,
      );
  }
  for (const [i, op] of state.operations.entries()) {
    if (!envs.has(op.environment))
      throw new ConfigError(
        `${source}: operations[${i}].environment: names unknown environment "${op.environment}"`,
      );
  }
  const byId = new Map(state.deployments.map((d) => [d.id, d]));
  if (byId.size !== state.deployments.length) {
    const seen = new Set<string>();
    const twice = state.deployments.find((d) => seen.size === seen.add(d.id).size)?.id;
    throw new ConfigError(`${source}: deployments: the id "${twice}" is used twice; expected unique ids`);
  }
  for (const [i, env] of state.environments.entries()) {
    const current = env.currentDeploymentId;
    if (current === undefined) continue;
    const d = byId.get(current);
    if (d === undefined)
      throw new ConfigError(
        `${source}: environments[${i}].currentDeploymentId: got "${current}", expected the id of one of ${env.slug}'s deployments`,
      );
    if (d.environment !== env.slug)
      throw new ConfigError(
        `${source}: environments[${i}].currentDeploymentId: got "${current}", a deployment of ${d.environment}; expected one of ${env.slug}'s deployments`,
      );
  }
  for (const [slug, entries] of Object.entries(state.liveHistory)) {
    if (!envs.has(slug))
      throw new ConfigError(`${source}: liveHistory.${slug}: names unknown environment "${slug}"`);
    for (const [i, entry] of entries.entries()) {
      if (byId.get(entry.deploymentId)?.environment !== slug)
        throw new ConfigError(
          `${source}: liveHistory.${slug}[${i}].deploymentId: got "${entry.deploymentId}", expected the id of one of ${slug}'s deployments`,
        );
    }
  }
  const hostnames = new Set<string>();
  for (const dom of state.domains) {
    if (hostnames.size === hostnames.add(dom.hostname).size)
      throw new ConfigError(
        `${source}: domain ${dom.hostname} is listed twice; expected each hostname once (it routes to one deployment)`,
      );
    if (!envs.has(dom.environment))
      throw new ConfigError(
        `${source}: domain ${dom.hostname} names unknown environment "${dom.environment}"`,
      );
    if (dom.deploymentId !== undefined && !ids.has(dom.deploymentId))
      throw new ConfigError(
        `${source}: domain ${dom.hostname} points to unknown deployment "${dom.deploymentId}"`,
      );
  }
  return state;
}

/** Reads the state file; undefined when it does not exist yet. */
export function readStateFile(path: string): LocalState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `${path}: not valid JSON (${(e as Error).message}); move it away to start from the demo project`,
    );
  }
  return parseLocalState(raw, path);
}

/** Writes the state atomically. */
export function writeStateFile(path: string, state: LocalState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, path);
}
