/**
 * Progress as the core reports it; the CLI decides how to draw it (a line on
 * a TTY, JSON lines with --json, nothing otherwise). Core code calls these
 * freely: the reporter throttles.
 */

export interface Counters {
  files: number;
  dirs: number;
  bytes: number;
  /** Totals from the scan that runs ahead, once known. */
  totalFiles?: number;
  totalBytes?: number;
  errors: number;
}

export interface ProgressReporter {
  /** The phase changed ("scanning", "backup", "restore", ...). */
  phase(name: string): void;
  update(c: Readonly<Counters>, currentPath?: string): void;
  /** Something the user should know that does not stop the run. */
  warn(message: string): void;
}

export const silentProgress: ProgressReporter = {
  phase() {},
  update() {},
  warn() {},
};

export function newCounters(): Counters {
  return { files: 0, dirs: 0, bytes: 0, errors: 0 };
}
