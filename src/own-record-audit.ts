/**
 * Switchyard's own record of an environment (src/domain/own-record.ts) read from its audit: Flow
 * (`/rollback`, `/promote`, `/deployments`) and the notices read it the same way, so a reminder's
 * "rolled back since … by …" and `/deployments`' banner say the same.
 */
import type { AuditEntry } from './audit.js';
import { type OwnRecord, type OwnSwitch, ownRecordOf } from './domain/own-record.js';
import type { EnvironmentSnapshot } from './domain/types.js';
import { personName } from './views/format.js';

/**
 * What `entries` (an environment's newest audit entries, newest first) tell of `snapshot` that its
 * platform keeps no record of.
 */
export function ownRecordFromAudit(snapshot: EnvironmentSnapshot, entries: readonly AuditEntry[]): OwnRecord {
  const switches: OwnSwitch[] = [];
  // Newest first: the switches oldest first.
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (e?.event !== 'succeeded' || e.targetId === undefined) continue;
    switches.push({
      action: e.action,
      targetId: e.targetId,
      at: e.at,
      ...(e.fromId === undefined ? {} : { fromId: e.fromId }),
      ...(e.actor === undefined ? {} : { by: personName(e.actor) }),
    });
  }
  return ownRecordOf(snapshot, switches);
}
