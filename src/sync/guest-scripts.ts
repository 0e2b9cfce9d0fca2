// Shell scripts the sync runs in the guest. The guest has busybox only, and
// Linux refuses any single argument over 128 KiB (MAX_ARG_STRLEN), which is
// what a command string becomes when the guest runs it with `sh -c`.
import { dirname } from 'node:path/posix'
import { shellQuote } from './format.js'

/** Largest command string sent; headroom below 128 KiB for the wrapper. */
export const MAX_COMMAND_BYTES = 120 * 1024

/** Where the guest keeps what the next sync needs, relative to the workdir. */
export const STATE_DIR = '.smolvm-action'
export const MANIFEST_PATH = `${STATE_DIR}/manifest`
export const SYNC_ID_PATH = `${STATE_DIR}/sync-id`

export const PART_MARKER = 'smolvm-action-part: ok'
export const SYNC_MARKER = 'smolvm-action-sync: ok'
export const FAILED_STEP_PREFIX = 'smolvm-action-sync-failed: '
export const MANIFEST_PRESENT = 'smolvm-action-manifest: present'
export const MANIFEST_ABSENT = 'smolvm-action-manifest: absent'

// Contains '_', so no line of base64 output can ever equal it.
const HEREDOC_END = 'SMOLVM_ACTION_B64_END'
const BASE64_LINE = 76
// One shell line of removals stays short so no line gets unwieldy.
const REMOVAL_LINE_BYTES = 4096

export function assertCommandSize(command: string): void {
  const bytes = Buffer.byteLength(command, 'utf8')
  if (bytes > MAX_COMMAND_BYTES) {
    throw new Error(
      `Internal error: a sync command of ${bytes} bytes exceeds the ` +
        `${MAX_COMMAND_BYTES}-byte limit for one guest command.`
    )
  }
}

/** Bytes a part command adds around the base64 payload, with margin. */
export const PART_OVERHEAD_BYTES = 1024

/** Size of the part command for `n` payload bytes, for checking options. */
export function partCommandBytes(n: number): number {
  const b64 = 4 * Math.ceil(n / 3)
  return b64 + Math.ceil(b64 / BASE64_LINE) + PART_OVERHEAD_BYTES
}

/**
 * Writes one decoded part to its own file. Each part has its own name and
 * is written with `>`, so sending the same command twice leaves the same
 * file. `stale` names the parts this one replaces after a split, in case an
 * earlier attempt at them did land.
 */
export function partCommand(
  dir: string,
  name: string,
  data: Buffer,
  stale: string[]
): string {
  const d = shellQuote(dir)
  const rmStale = stale.map((s) => ` && rm -f "$d/${s}"`).join('')
  const b64 = data.toString('base64')
  const lines: string[] = []
  for (let i = 0; i < b64.length; i += BASE64_LINE) {
    lines.push(b64.slice(i, i + BASE64_LINE))
  }
  return (
    `d=${d} && mkdir -p "$d"${rmStale} && ` +
    `base64 -d >"$d/${name}" <<'${HEREDOC_END}' && ` +
    `echo '${PART_MARKER} ${name}'\n` +
    `${lines.join('\n')}\n${HEREDOC_END}\n`
  )
}

/** Prints the previous manifest base64-encoded, so any name survives. */
export function readManifestCommand(workdir: string): string {
  const f = shellQuote(`${workdir}/${MANIFEST_PATH}`)
  return [
    `f=${f}`,
    `if [ -f "$f" ]; then base64 "$f" && echo '${MANIFEST_PRESENT}'`,
    `elif [ -e "$f" ] || [ -L "$f" ]; then`,
    `  echo "$f is not a regular file" >&2; exit 1`,
    `else echo '${MANIFEST_ABSENT}'; fi`,
    ''
  ].join('\n')
}

/**
 * Shell lines, run in the workdir, that remove `paths` and then the
 * directories they leave empty. rmdir only removes empty directories, so
 * anything else the guest keeps there survives.
 */
export function removalScript(paths: string[]): string {
  if (paths.length === 0) return ''
  const lines = batch(paths, (args) => `rm -f -- ${args} || exit 1`)

  const dirs = new Set<string>()
  for (const p of paths) {
    for (let d = dirname(p); d !== '.'; d = dirname(d)) dirs.add(d)
  }
  // Deepest first, so a parent is tried after its children are gone.
  const ordered = [...dirs].sort(
    (a, b) => b.split('/').length - a.split('/').length
  )
  lines.push(...batch(ordered, (args) => `rmdir -- ${args} 2>/dev/null || :`))
  return `${lines.join('\n')}\n`
}

function batch(items: string[], line: (args: string) => string): string[] {
  const out: string[] = []
  let current: string[] = []
  let size = 0
  for (const item of items) {
    const q = shellQuote(item)
    if (current.length > 0 && size + q.length > REMOVAL_LINE_BYTES) {
      out.push(line(current.join(' ')))
      current = []
      size = 0
    }
    current.push(q)
    size += q.length + 1
  }
  if (current.length > 0) out.push(line(current.join(' ')))
  return out
}

export interface FinalScript {
  tempDir: string
  workdir: string
  sha256: string
  syncId: string
  /** Removal lines to run inline, or '' when none or uploaded as parts. */
  inlineRemoval: string
  /** True when the removal script was uploaded to `<tempDir>/r/`. */
  uploadedRemoval: boolean
}

export type FinalStep =
  | 'missing'
  | 'assemble'
  | 'checksum'
  | 'workdir'
  | 'delete'
  | 'extract'
  | 'cleanup'

/**
 * Joins the parts, checks the archive's sha256 before anything in the
 * workdir changes, removes what was deleted since the last sync, extracts
 * and cleans up. Every step ends the script with its name on stderr when
 * it fails; only a complete run prints the marker.
 *
 * Parts are joined in the shell's glob order, which under LC_ALL=C is byte
 * order: `00000012` < `00000012a` < `00000012b` < `00000013`, so the pieces
 * of a split part stay in archive order.
 */
export function finalCommand(s: FinalScript): string {
  const id = s.syncId
  const lines = [
    'LC_ALL=C',
    'export LC_ALL',
    `d=${shellQuote(s.tempDir)}`,
    `w=${shellQuote(s.workdir)}`,
    'fail() {',
    `  printf '${FAILED_STEP_PREFIX}%s\\n' "$1" >&2`,
    '  rm -rf "$d"',
    '  exit 1',
    '}',
    // The lock makes a resent final step wait for the first one and report
    // its result instead of running twice on the same files.
    'if ! mkdir "$d/lock" 2>/dev/null; then',
    '  while [ -d "$d" ]; do sleep 1; done',
    `  if [ "$(cat "$w/${SYNC_ID_PATH}" 2>/dev/null)" = '${id}' ]; then`,
    `    echo '${SYNC_MARKER} ${id}'`,
    '    exit 0',
    '  fi',
    `  printf '${FAILED_STEP_PREFIX}missing\\n' >&2`,
    '  exit 1',
    'fi',
    // Each part is removed once copied: /tmp is memory in the guest.
    'for f in "$d"/a/*; do cat "$f" && rm -f "$f" || fail assemble; done' +
      ' >"$d/archive.tgz" || fail assemble',
    `printf '%s  %s\\n' '${s.sha256}' "$d/archive.tgz" >"$d/archive.sha256"` +
      ' || fail checksum',
    'sha256sum -c "$d/archive.sha256" >"$d/check.txt" 2>&1 ||' +
      ' { cat "$d/check.txt" >&2; fail checksum; }',
    'mkdir -p "$w" || fail workdir'
  ]
  if (s.uploadedRemoval) {
    lines.push(
      'for f in "$d"/r/*; do cat "$f" || fail delete; done' +
        ' >"$d/remove.sh" || fail delete',
      '(cd "$w" && sh "$d/remove.sh") || fail delete'
    )
  } else if (s.inlineRemoval !== '') {
    lines.push(
      '(',
      'cd "$w" || exit 1',
      s.inlineRemoval.trimEnd(),
      ') || fail delete'
    )
  }
  lines.push(
    'tar -xzo -f "$d/archive.tgz" -C "$w" || fail extract',
    'rm -rf "$d" || fail cleanup',
    `echo '${SYNC_MARKER} ${id}'`,
    ''
  )
  return lines.join('\n')
}

/** Removes the temp dir after a failed upload; the guest may keep nothing. */
export function cleanupCommand(tempDir: string): string {
  return `rm -rf ${shellQuote(tempDir)}`
}
