/**
 * Near misses of typed words: `prodution` for `production`, `/rolback` for `/rollback`. Used to add
 * "did you mean …" to a refusal; never to act on the guess.
 */

/** The Levenshtein distance of two strings (insertions, deletions and substitutions each cost 1). */
export function editDistance(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      const substitute = (previous[j - 1] ?? 0) + (x[i - 1] === y[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitute));
    }
    previous = row;
  }
  return previous[y.length] ?? 0;
}

/**
 * The one candidate within 2 edits of `input` (case-insensitive), closer than any other; undefined when
 * there is none or two are as close. A candidate must differ in less than half its length: `xa` is not
 * taken for `qa`.
 */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const wanted = input.trim().toLowerCase();
  if (wanted === '') return undefined;
  let best: { readonly candidate: string; readonly distance: number } | undefined;
  let tie = false;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance === 0 || distance > 2 || distance * 2 >= candidate.length) continue;
    if (best === undefined || distance < best.distance) {
      best = { candidate, distance };
      tie = false;
    } else if (distance === best.distance) tie = true;
  }
  return tie ? undefined : best?.candidate;
}
