// fsync of a directory, so a rename (or a new file) in it survives a power cut.
import fs from "node:fs/promises";

export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, "r");
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  } finally {
    await fh.close();
  }
}
