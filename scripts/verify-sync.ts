// Compares what reached the guest with the host, file by file: the sha256
// of each regular file, the target of each symlink, and the exec bit. Used
// by the demo and by the end-to-end tests.

import { createHash } from 'node:crypto'
import { lstat, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { listSyncFiles } from '../src/sync/index.js'

/** Guest script printing "FILE <sha256|link:target> <x|-> <path>" lines. */
export const GUEST_LISTING_SCRIPT = `
find . -path ./.smolvm-action -prune -o \\( -type f -o -type l \\) -print | sort > /tmp/smolvm-listing
echo "guest: $(wc -l < /tmp/smolvm-listing) files"
while IFS= read -r f; do
  if [ -L "$f" ]; then s=link:$(readlink "$f"); else s=$(sha256sum "$f" | cut -d' ' -f1); fi
  if [ -x "$f" ] && [ ! -L "$f" ]; then m=x; else m=-; fi
  echo "FILE $s $m $f"
done < /tmp/smolvm-listing
rm -f /tmp/smolvm-listing
`

export function parseGuestListing(log: string): Map<string, string> {
  const guest = new Map<string, string>()
  for (const line of log.split('\n')) {
    const m = /^FILE (\S+) (\S) (.*)$/.exec(line)
    if (m) guest.set(m[3] as string, `${m[1] as string} ${m[2] as string}`)
  }
  return guest
}

export async function hostListing(
  root: string,
  excludes: string[] = []
): Promise<Map<string, string>> {
  const list = await listSyncFiles(root, excludes)
  const view = new Map<string, string>()
  for (const f of list.files) {
    const abs = join(list.root, f.path)
    const st = await lstat(abs)
    const sum = st.isSymbolicLink()
      ? `link:${await readlink(abs)}`
      : createHash('sha256')
          .update(await readFile(abs))
          .digest('hex')
    const mode = !st.isSymbolicLink() && st.mode & 0o111 ? 'x' : '-'
    view.set(`./${f.path}`, `${sum} ${mode}`)
  }
  return view
}

/** Human-readable differences; empty when the guest equals the host. */
export function compareListings(
  host: Map<string, string>,
  guest: Map<string, string>
): string[] {
  const problems: string[] = []
  for (const [path, want] of host) {
    const got = guest.get(path)
    if (got !== want)
      problems.push(`${path}: host ${want}, guest ${got ?? 'missing'}`)
  }
  for (const path of guest.keys()) {
    if (!host.has(path)) problems.push(`${path}: only in the guest`)
  }
  return problems
}
