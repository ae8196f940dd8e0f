/** Making a write survive a power cut: the file's data, then the directory entry that names it. */
import * as fs from 'node:fs/promises';

/** fsyncs a directory, so a file just linked or renamed into it stays there. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
