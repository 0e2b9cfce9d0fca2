import { SyncInputError } from './errors.js'
import { humanBytes } from './format.js'
import type { FileList, SyncLog } from './types.js'

// Crabbox's defaults, so a repository tuned for Crabbox behaves the same.
const THRESHOLDS = {
  warnFiles: { env: 'CRABBOX_SYNC_WARN_FILES', fallback: 50_000 },
  warnBytes: { env: 'CRABBOX_SYNC_WARN_BYTES', fallback: 5 * 1024 ** 3 },
  failFiles: { env: 'CRABBOX_SYNC_FAIL_FILES', fallback: 150_000 },
  failBytes: { env: 'CRABBOX_SYNC_FAIL_BYTES', fallback: 20 * 1024 ** 3 }
}

const HINT =
  'add generated paths to .crabboxignore or the exclude input, ' +
  'or set force-sync-large: true when intentional'

const MAX_LISTED = 5

/**
 * Logs the sync candidate and refuses one that is too large. Unlike
 * Crabbox, it always measures the whole manifest, because the whole
 * manifest is what gets uploaded. Also reports the tracked files the
 * built-in excludes spared and the paths that could not be synced.
 */
export function checkSyncSize(
  list: FileList,
  forceLarge: boolean,
  log: SyncLog,
  env: NodeJS.ProcessEnv = process.env
): void {
  const files = list.files.length
  log.info(`sync candidate: ${files} files, ${humanBytes(list.bytes)}`)
  reportProtected(list, log)
  reportSkipped(list, log)

  const t = readThresholds(env, log)
  const allowLarge = forceLarge || isTrue(env.CRABBOX_SYNC_ALLOW_LARGE)
  const topDirs = `top dirs: ${topDirectories(list)}`

  if (!allowLarge) {
    let reason: string | undefined
    if (t.failFiles > 0 && files >= t.failFiles) {
      reason = `${files} files >= limit ${t.failFiles}`
    } else if (t.failBytes > 0 && list.bytes >= t.failBytes) {
      reason = `${humanBytes(list.bytes)} >= limit ${humanBytes(t.failBytes)}`
    }
    if (reason !== undefined) {
      throw new SyncInputError(
        `The sync candidate is too large: ${reason} (${topDirs}); ` +
          `${HINT}, or set CRABBOX_SYNC_ALLOW_LARGE=1.`
      )
    }
  }

  const warnings: string[] = []
  if (t.warnFiles > 0 && files >= t.warnFiles) {
    warnings.push(`${files} files >= warning threshold ${t.warnFiles}`)
  }
  if (t.warnBytes > 0 && list.bytes >= t.warnBytes) {
    warnings.push(
      `${humanBytes(list.bytes)} >= warning threshold ` +
        humanBytes(t.warnBytes)
    )
  }
  if (warnings.length > 0) {
    log.warning(
      `large sync candidate: ${warnings.join(', ')} (${topDirs}); ${HINT}.`
    )
  }
}

function reportProtected(list: FileList, log: SyncLog): void {
  const n = list.protectedTracked.length
  if (n === 0) return
  const more = n > MAX_LISTED ? ` (+${n - MAX_LISTED} more)` : ''
  log.info(
    `protected ${n} tracked files from built-in artifact excludes: ` +
      `${list.protectedTracked.slice(0, MAX_LISTED).join(', ')}${more}; ` +
      'they are synced; add them to .crabboxignore or the exclude input ' +
      'if they are build output.'
  )
}

function reportSkipped(list: FileList, log: SyncLog): void {
  const skipped = list.skipped ?? []
  if (skipped.length === 0) return
  const more =
    skipped.length > MAX_LISTED ? ` (+${skipped.length - MAX_LISTED} more)` : ''
  log.warning(
    `skipped ${skipped.length} paths whose name or link target is not ` +
      `valid UTF-8: ${skipped.slice(0, MAX_LISTED).join(', ')}${more}; ` +
      'rename them to sync them.'
  )
}

type Thresholds = Record<keyof typeof THRESHOLDS, number>

function readThresholds(env: NodeJS.ProcessEnv, log: SyncLog): Thresholds {
  const out = {} as Thresholds
  for (const [key, { env: name, fallback }] of Object.entries(THRESHOLDS)) {
    const raw = env[name]?.trim()
    let value = fallback
    if (raw !== undefined && raw !== '') {
      if (/^\d+$/.test(raw)) {
        value = Number(raw)
      } else {
        log.warning(
          `${name}=${raw} is not a whole number of files or bytes; ` +
            `using the default ${fallback}. Set it to a number, or 0 to ` +
            'turn the check off.'
        )
      }
    }
    out[key as keyof Thresholds] = value
  }
  return out
}

function isTrue(value: string | undefined): boolean {
  return ['1', 'true', 'yes', 'on'].includes((value ?? '').trim().toLowerCase())
}

/** The five first path segments holding the most files, `.` for the root. */
function topDirectories(list: FileList): string {
  const counts = new Map<string, number>()
  for (const f of list.files) {
    const slash = f.path.indexOf('/')
    const dir = slash < 0 ? '.' : f.path.slice(0, slash)
    counts.set(dir, (counts.get(dir) ?? 0) + 1)
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, MAX_LISTED)
    .map(([dir, n]) => `${dir}:${n}`)
    .join(', ')
}
