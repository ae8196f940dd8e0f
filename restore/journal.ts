/**
 * What a blank-host restore has done so far, on the restoring host
 * (`$XDG_CACHE_HOME/stowage/restore/`), keyed by snapshot and Docker host: a
 * rerun after a failure treats what it lists as its own and finishes the
 * job, rather than seeing conflicts or making anything twice; a rerun after
 * success finds everything done. Nothing is
 * added to the restored objects themselves (their labels stay as captured).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

interface JournalData {
  volumes: string[];
  filled: string[];
  containers: string[];
}

export class RestoreJournal {
  private readonly file: string;
  private data: JournalData;

  constructor(dir: string, snapshotId: string, dockerHost: string) {
    const key = createHash('sha256').update(`${snapshotId}\0${dockerHost}`).digest('hex').slice(0, 24);
    this.file = path.join(dir, `${key}.json`);
    try {
      this.data = JSON.parse(fs.readFileSync(this.file, 'utf8')) as JournalData;
    } catch {
      this.data = { volumes: [], filled: [], containers: [] };
    }
  }

  get volumes(): ReadonlySet<string> {
    return new Set(this.data.volumes);
  }

  get containers(): ReadonlySet<string> {
    return new Set(this.data.containers);
  }

  isFilled(volume: string): boolean {
    return this.data.filled.includes(volume);
  }

  record(kind: keyof JournalData, name: string): void {
    if (this.data[kind].includes(name)) return;
    this.data[kind].push(name);
    this.save();
  }

  /** Forgets a volume's filling (it is being made anew). */
  unfill(volume: string): void {
    if (!this.data.filled.includes(volume)) return;
    this.data.filled = this.data.filled.filter((v) => v !== volume);
    this.save();
  }

  private save(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.data), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }
}
