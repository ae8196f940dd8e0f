/**
 * What a long-running command (serve, later daemon) does on SIGINT/SIGTERM
 * instead of the default "remove locks and exit 130": it stops gracefully
 * and decides its own exit status.
 */
type StopHandler = (signal: NodeJS.Signals) => Promise<number>;

let handler: StopHandler | null = null;

export function setStopHandler(h: StopHandler | null): void {
  handler = h;
}

export function stopHandler(): StopHandler | null {
  return handler;
}
