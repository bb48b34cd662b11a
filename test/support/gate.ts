/** A gate a test opens, to hold something at a chosen point without sleeping. */

/** A gate the test opens: `wait()` parks until `open()`; `reached` once something waits. */
export function gate(): { wait: () => Promise<void>; open: () => void; reached: Promise<void> } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  let arrive = () => {};
  const reached = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  return {
    wait: () => {
      arrive();
      return opened;
    },
    open,
    reached,
  };
}
