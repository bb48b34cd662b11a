/** Shared by the renderer edge tests: a /deployments whose newest row's id is too long for a button. */
import type { Deployment } from '../../src/domain/types.js';
import { deploymentsView } from '../../src/views/model.js';
import type { MessageView } from '../../src/views/types.js';
import { routingOf } from '../views/catalog.js';
import { NOW, snapshot } from '../views/fixtures.js';

export const LONG_ID = `dep_${'x'.repeat(80)}`;

/** Rolled back, with a ready deployment newer than the current one whose id does not fit a button. */
export function deploymentsWithLongId(): MessageView {
  const s = snapshot({ rolledBack: true });
  const first = s.deployments[0] as Deployment;
  const withLong = {
    ...s,
    deployments: [{ ...first, id: LONG_ID, createdAt: NOW - 60_000 }, ...s.deployments],
  };
  return deploymentsView(withLong, { routing: routingOf(withLong), audit: [], now: NOW });
}

/** A read limited by the adapter (`deploymentsTruncated`) that still lists every deployment read. */
export function deploymentsTruncated(): MessageView {
  const s = { ...snapshot(), deploymentsTruncated: true as const };
  return deploymentsView(s, { routing: routingOf(s), audit: [], now: NOW });
}
