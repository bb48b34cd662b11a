/**
 * `npm run bench`: runs every benchmark in sequence (each prints its own figures, as ratios against a
 * baseline measured in the same run) and ends with a one-line summary per benchmark. Pass names to run
 * a subset: `npm run bench -- router jobs`.
 */
import { runAlertsBench } from './alerts.js';
import { runJobsBench } from './jobs.js';
import { runRouterBench } from './router.js';
import { runSlackAckBench } from './slack-ack.js';

const benches: Record<string, () => Promise<unknown>> = {
  router: () => runRouterBench(),
  jobs: () => runJobsBench(),
  'slack-ack': () => runSlackAckBench(),
  alerts: () => runAlertsBench(),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !(w in benches));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  const names = wanted.length > 0 ? wanted : Object.keys(benches);
  const summary: string[] = [];
  for (const name of names) {
    const run = benches[name];
    if (!run) continue;
    console.log(`\n=== ${name} ===`);
    const started = performance.now();
    try {
      const result = await run();
      summary.push(
        `${name}: ok in ${((performance.now() - started) / 1000).toFixed(1)} s ${JSON.stringify(result)}`,
      );
    } catch (e) {
      summary.push(`${name}: FAILED ${(e as Error).message}`);
      process.exitCode = 1;
    }
  }
  console.log('\n=== summary ===');
  for (const line of summary) console.log(line);
  process.exit(process.exitCode ?? 0);
}

void main();
