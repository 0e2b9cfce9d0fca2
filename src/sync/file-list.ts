import { lstat, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ExcludeRules } from './excludes.js'
import { compareBytes, isSafeRelativePath } from './format.js'
import { git, gitOutput } from './git.js'
import type { FileList, SyncFile } from './types.js'

const GITLINK_MODE = '160000'
const REGULAR_MODES = new Set(['100644', '100755'])
// lstat calls in flight; enough to hide disk latency, few enough to stay
// well below the open-file limit.
const LSTAT_CONCURRENCY = 64

interface Candidate {
  path: string
  trackedRegular: boolean
}

/**
 * Lists what a sync uploads: what git would commit plus untracked files
 * that are not ignored, including the files of checked-out submodules,
 * minus the exclude rules. `root` comes from checkSyncRoot.
 */
export async function listSyncFiles(
  root: string,
  extraExcludes: string[]
): Promise<FileList> {
  const rules = new ExcludeRules([
    ...extraExcludes,
    ...(await readIgnoreFile(join(root, '.crabboxignore')))
  ])
  const skipped: string[] = []
  const candidates = await listCandidates(root, '', skipped)

  const seen = new Set<string>()
  const kept: Candidate[] = []
  const protectedBy = new Map<string, string>()
  for (const c of candidates) {
    if (!isSafeRelativePath(c.path) || seen.has(c.path)) continue
    seen.add(c.path)
    const decision = rules.decide(c.path, c.trackedRegular)
    if (decision.excluded) continue
    if (decision.protectedBy !== undefined) {
      protectedBy.set(c.path, decision.protectedBy)
    }
    kept.push(c)
  }

  const files = (
    await mapLimited(kept, LSTAT_CONCURRENCY, (c) =>
      describe(root, c.path, skipped)
    )
  ).filter((f): f is SyncFile => f !== null)
  files.sort((a, b) => compareBytes(a.path, b.path))

  const protectedTracked: string[] = []
  for (const f of files) {
    const pattern = protectedBy.get(f.path)
    if (pattern !== undefined) protectedTracked.push(`${f.path} (${pattern})`)
  }
  return {
    root,
    files,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
    protectedTracked,
    skipped
  }
}

async function readIgnoreFile(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n')
  } catch {
    return []
  }
}

/** Tracked and untracked-not-ignored paths of one work tree, recursively. */
async function listCandidates(
  dir: string,
  prefix: string,
  skipped: string[]
): Promise<Candidate[]> {
  const staged = await gitOutput(dir, ['ls-files', '--stage', '-z'])
  const others = await gitOutput(dir, [
    'ls-files',
    '--others',
    '--exclude-standard',
    '-z'
  ])

  const out: Candidate[] = []
  const gitlinks: string[] = []
  for (const record of splitNul(staged)) {
    // "<mode> <object> <stage>\t<path>"
    const tab = record.indexOf(0x09)
    if (tab < 0) continue
    const [mode] = record.subarray(0, tab).toString('latin1').split(' ')
    const path = decodePath(record.subarray(tab + 1), prefix, skipped)
    if (path === null) continue
    if (mode === GITLINK_MODE) {
      gitlinks.push(path.slice(prefix.length))
      continue
    }
    out.push({ path, trackedRegular: REGULAR_MODES.has(mode ?? '') })
  }
  for (const raw of splitNul(others)) {
    const path = decodePath(raw, prefix, skipped)
    // A trailing slash marks an untracked nested repository; its files are
    // not the parent's to sync.
    if (path !== null && !path.endsWith('/')) {
      out.push({ path, trackedRegular: false })
    }
  }

  for (const link of gitlinks) {
    const subdir = join(dir, link)
    if (await isWorkTreeTop(subdir)) {
      out.push(...(await listCandidates(subdir, `${prefix}${link}/`, skipped)))
    }
  }
  return out
}

/** True when `dir` is the top of its own work tree: a checked-out submodule. */
async function isWorkTreeTop(dir: string): Promise<boolean> {
  const r = await git(dir, ['rev-parse', '--show-prefix'])
  return r.code === 0 && r.stdout.toString('utf8').trim() === ''
}

function splitNul(buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (;;) {
    const end = buf.indexOf(0, start)
    if (end < 0) break
    if (end > start) out.push(buf.subarray(start, end))
    start = end + 1
  }
  if (start < buf.length) out.push(buf.subarray(start))
  return out
}

/**
 * Paths travel as JS strings and tar headers as UTF-8, so a name that is
 * not valid UTF-8 could not arrive intact; it is reported instead.
 */
function decodePath(
  raw: Buffer,
  prefix: string,
  skipped: string[]
): string | null {
  const s = raw.toString('utf8')
  if (!Buffer.from(s, 'utf8').equals(raw)) {
    skipped.push(prefix + s)
    return null
  }
  return prefix + s
}

async function describe(
  root: string,
  path: string,
  skipped: string[]
): Promise<SyncFile | null> {
  const abs = join(root, path)
  let st
  try {
    st = await lstat(abs)
  } catch {
    // Deleted in the work tree but still in the index.
    return null
  }
  const mode = st.mode & 0o7777
  const mtimeMs = st.mtimeMs
  if (st.isFile()) return { path, size: st.size, kind: 'file', mode, mtimeMs }
  if (!st.isSymbolicLink()) return null

  const target = await readlink(abs, { encoding: 'buffer' })
  const linkTarget = target.toString('utf8')
  if (!Buffer.from(linkTarget, 'utf8').equals(target)) {
    skipped.push(path)
    return null
  }
  return { path, size: st.size, kind: 'symlink', mode, linkTarget, mtimeMs }
}

async function mapLimited<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>
): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i] as T)
    }
  }
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker)
  )
  return results
}
