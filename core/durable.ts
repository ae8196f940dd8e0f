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

/** Writes pieces in order with writev, in batches under IOV_MAX (1024 on Linux), finishing any short write. */
export async function writeAll(fh: fs.FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  for (let i = 0; i < parts.length; i += 512) {
    const batch = parts.slice(i, i + 512);
    const want = batch.reduce((n, p) => n + p.length, 0);
    const { bytesWritten } = await fh.writev(batch as Uint8Array[]);
    if (bytesWritten < want) await fh.write(Buffer.concat(batch).subarray(bytesWritten));
  }
}
