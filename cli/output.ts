/**
 * How commands talk to people and machines. On a terminal, a progress line
 * (files, bytes, rate, ETA) redrawn in place on stderr; with --json, one JSON
 * object per line on stdout (status lines, warnings, and a final summary);
 * otherwise warnings only. Results go to stdout, messages to stderr.
 */
import cliProgress from 'cli-progress';
import type { Counters, ProgressReporter } from '../core/progress.ts';

export interface OutputOptions {
  readonly json: boolean;
  readonly quiet: boolean;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;

  constructor(opts: OutputOptions) {
    this.json = opts.json;
    this.quiet = opts.quiet;
  }

  /** Prints a command's result: the object as JSON, or the text the renderer makes. */
  result(value: unknown, text: () => string): void {
    if (this.json) process.stdout.write(JSON.stringify({ type: 'summary', ...(value as object) }) + '\n');
    else {
      const t = text();
      if (t.length > 0) process.stdout.write(t.endsWith('\n') ? t : t + '\n');
    }
  }

  /** Prints a listing: a JSON array, or text. */
  list(value: unknown[], text: () => string): void {
    if (this.json) process.stdout.write(JSON.stringify(value) + '\n');
    else {
      const t = text();
      if (t.length > 0) process.stdout.write(t.endsWith('\n') ? t : t + '\n');
    }
  }

  info(message: string): void {
    if (this.quiet) return;
    if (this.json) process.stdout.write(JSON.stringify({ type: 'info', message }) + '\n');
    else process.stderr.write(message + '\n');
  }

  warn(message: string): void {
    if (this.json) process.stderr.write(JSON.stringify({ type: 'warning', message }) + '\n');
    else process.stderr.write(`warning: ${message}\n`);
  }

  error(code: string, message: string, exitCode: number): void {
    if (this.json) process.stderr.write(JSON.stringify({ type: 'error', code, message, exitCode }) + '\n');
    else process.stderr.write(`stowage: ${message}\n`);
  }

  progress(verb: string): ProgressReporter & { stop(): void } {
    if (this.json) return new JsonProgress(this, verb);
    if (!this.quiet && process.stderr.isTTY) return new TtyProgress(this, verb);
    return { phase() {}, update() {}, warn: (m) => this.warn(m), stop() {} };
  }
}

class TtyProgress implements ProgressReporter {
  private readonly bar: cliProgress.SingleBar;
  private readonly out: Output;
  private readonly started = Date.now();
  private started_ = false;
  private phaseName: string;
  private last: Counters = { files: 0, dirs: 0, bytes: 0, errors: 0 };
  private current = '';

  constructor(out: Output, verb: string) {
    this.out = out;
    this.phaseName = verb;
    this.bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        fps: 8,
        hideCursor: true,
        clearOnComplete: true,
        linewrap: false,
        format: () => this.line(),
      },
      cliProgress.Presets.shades_classic,
    );
  }

  private line(): string {
    const c = this.last;
    const secs = (Date.now() - this.started) / 1000;
    const rate = secs > 0 ? c.bytes / secs : 0;
    const total = c.totalBytes !== undefined ? ` / ${formatBytes(c.totalBytes)}` : '';
    const files = c.totalFiles !== undefined ? `${c.files}/${c.totalFiles}` : `${c.files}`;
    const eta = c.totalBytes !== undefined && rate > 0 ? ` ETA ${formatDuration((c.totalBytes - c.bytes) / rate)}` : '';
    const errs = c.errors > 0 ? ` ${c.errors} errors` : '';
    const width = process.stderr.columns ?? 100;
    const head = `[${formatDuration(secs)}] ${this.phaseName}: ${files} files, ${formatBytes(c.bytes)}${total}, ${formatBytes(rate)}/s${eta}${errs}`;
    const room = width - head.length - 3;
    const tail = room > 10 && this.current ? `  ${this.current.length > room ? '…' + this.current.slice(-(room - 1)) : this.current}` : '';
    return head + tail;
  }

  phase(name: string): void {
    this.phaseName = name;
    this.ensureStarted();
  }

  private ensureStarted(): void {
    if (!this.started_) {
      this.bar.start(1, 0);
      this.started_ = true;
    }
  }

  update(c: Readonly<Counters>, currentPath?: string): void {
    this.last = { ...c };
    if (currentPath !== undefined) this.current = currentPath;
    this.ensureStarted();
    this.bar.update(0);
  }

  warn(message: string): void {
    if (this.started_) {
      this.bar.stop();
      this.started_ = false;
    }
    this.out.warn(message);
  }

  stop(): void {
    if (this.started_) this.bar.stop();
    this.started_ = false;
  }
}

class JsonProgress implements ProgressReporter {
  private readonly out: Output;
  private readonly verb: string;
  private readonly started = Date.now();
  private lastPrint = 0;
  private phaseName = '';

  constructor(out: Output, verb: string) {
    this.out = out;
    this.verb = verb;
  }

  phase(name: string): void {
    this.phaseName = name;
  }

  update(c: Readonly<Counters>, currentPath?: string): void {
    const now = Date.now();
    if (now - this.lastPrint < 1000) return;
    this.lastPrint = now;
    const secs = (now - this.started) / 1000;
    const rate = secs > 0 ? c.bytes / secs : 0;
    process.stdout.write(
      JSON.stringify({
        type: 'status',
        operation: this.verb,
        phase: this.phaseName,
        secondsElapsed: Math.round(secs),
        files: c.files,
        totalFiles: c.totalFiles ?? null,
        bytes: c.bytes,
        totalBytes: c.totalBytes ?? null,
        bytesPerSecond: Math.round(rate),
        secondsRemaining: c.totalBytes !== undefined && rate > 0 ? Math.round((c.totalBytes - c.bytes) / rate) : null,
        errors: c.errors,
        currentPath: currentPath ?? null,
      }) + '\n',
    );
  }

  warn(message: string): void {
    this.out.warn(message);
  }

  stop(): void {}
}
