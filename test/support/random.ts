/**
 * The seeded random tests' generator (test/<area>/random.test.ts, test/platform/local-model.test.ts):
 * mulberry32, a small 32-bit PRNG. Seeded, so a failing script is replayed exactly from the seed each
 * test prints; not for anything but tests.
 */

/** A generator of numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The seeds a seeded test runs: `defaults`, or those `RANDOM_SEED` names (comma-separated), to replay the
 * script a failure printed: `RANDOM_SEED=7 npx vitest run --project redis test/jobs/random.test.ts`.
 */
export function seedsOr(defaults: readonly number[], env: NodeJS.ProcessEnv = process.env): number[] {
  const named = (env.RANDOM_SEED ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => Number(s) >>> 0);
  return named.length > 0 ? named : [...defaults];
}
