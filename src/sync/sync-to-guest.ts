import { createHash, randomBytes } from 'node:crypto'
import type { GuestExec } from '../smolfleet/types.js'
import { writeArchive } from './archive.js'
import { humanBytes, isSafeRelativePath } from './format.js'
import {
  cleanupCommand,
  FAILED_STEP_PREFIX,
  finalCommand,
  type FinalStep,
  MANIFEST_ABSENT,
  MANIFEST_PATH,
  MANIFEST_PRESENT,
  MAX_COMMAND_BYTES,
  partCommandBytes,
  readManifestCommand,
  removalScript,
  STATE_DIR,
  SYNC_ID_PATH,
  SYNC_MARKER
} from './guest-scripts.js'
import { excerpt, MIN_PART_BYTES, PartSink, PartUploader } from './upload.js'
import type { FileList, SyncLog } from './types.js'

export interface SyncOptions {
  list: FileList
  /** Absolute guest directory, already validated (/workspace or below). */
  workdir: string
  /** Runs one shell command string in the sandbox. */
  exec: GuestExec
  log: SyncLog
  /** Raw archive bytes per upload part; default 64 KiB. */
  chunkBytes?: number
  /** Part uploads in flight; default 4. */
  concurrency?: number
}

export interface SyncReport {
  files: number
  bytes: number
  archiveBytes: number
  /** Archive parts uploaded, counting each piece of a split part. */
  chunks: number
  /** sha256 of the gzipped archive, as checked in the guest. */
  sha256: string
  /** Files removed from the guest because they left the file list. */
  deleted: number
}

const DEFAULT_CHUNK_BYTES = 64 * 1024
const DEFAULT_CONCURRENCY = 4
// A removal script up to this size rides in the final command; a larger
// one is uploaded as parts first so the final command stays small.
const INLINE_REMOVAL_BYTES = 16 * 1024
const READ_TIMEOUT_SECONDS = 120
// The final step decompresses and writes the whole tree.
const FINAL_TIMEOUT_SECONDS = 1800
const CLEANUP_TIMEOUT_SECONDS = 60

const STEP_TEXT: Record<FinalStep, string> = {
  missing:
    'the uploaded archive parts were missing in the sandbox (an earlier ' +
    'attempt of the final step failed, or /tmp was cleared)',
  assemble: 'joining the uploaded archive parts in the sandbox failed',
  checksum:
    'the archive checksum in the sandbox did not match the uploaded archive',
  workdir: 'the workdir could not be created in the sandbox',
  delete: 'removing the files deleted since the last sync failed',
  extract: 'extracting the archive into the workdir failed',
  cleanup: 'removing the temporary upload directory failed'
}

/**
 * Uploads `list` into `workdir` in the sandbox: a gzipped tar streamed in
 * parts of at most `chunkBytes`, each written to its own file in a
 * per-sync temp dir, then one final step that verifies and extracts it.
 * Files that an earlier sync put there and that are no longer in the list
 * are removed; anything else in the workdir is left alone.
 */
export async function syncToGuest(o: SyncOptions): Promise<SyncReport> {
  const chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY
  checkOptions(chunkBytes, concurrency)
  const started = Date.now()
  const syncId = randomBytes(8).toString('hex')
  const tempDir = `/tmp/smolvm-action-sync-${syncId}`
  const { list, exec, log, workdir } = o

  const previous = await readPreviousManifest(exec, workdir)
  const current = new Set(list.files.map((f) => f.path))
  const removed = (previous ?? []).filter((p) => !current.has(p))
  log.debug(
    previous === null
      ? `No earlier sync found in ${workdir}; nothing to delete.`
      : `Earlier sync of ${previous.length} files found; ` +
          `${removed.length} to delete.`
  )

  const uploader = (dir: string, what: string): PartUploader =>
    new PartUploader({
      exec,
      dir,
      what,
      partBytes: chunkBytes,
      concurrency,
      log
    })
  const removals = uploader(`${tempDir}/r`, 'removal list')
  const archive = uploader(`${tempDir}/a`, 'archive')
  try {
    const script = removalScript(removed)
    const inline = Buffer.byteLength(script) <= INLINE_REMOVAL_BYTES
    if (!inline) {
      const data = Buffer.from(script, 'utf8')
      for (let at = 0; at < data.length; at += removals.partBytes) {
        await removals.add(data.subarray(at, at + removals.partBytes))
      }
      await removals.drain()
    }

    const hash = createHash('sha256')
    const sink = new PartSink(archive, hash)
    try {
      await writeArchive(list, manifestEntries(list, syncId), sink)
    } catch (e) {
      // A failed upload tears the archive stream down; report the cause.
      throw archive.failure ?? e
    }
    const sha256 = hash.digest('hex')
    log.debug(
      `Uploaded ${humanBytes(sink.bytes)} in ${archive.parts} parts ` +
        `(sha256 ${sha256}).`
    )

    await runFinal(exec, workdir, syncId, {
      tempDir,
      workdir,
      sha256,
      syncId,
      inlineRemoval: inline ? script : '',
      uploadedRemoval: !inline
    })

    const report: SyncReport = {
      files: list.files.length,
      bytes: list.bytes,
      archiveBytes: sink.bytes,
      chunks: archive.parts,
      sha256,
      deleted: removed.length
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    log.info(
      `Synced ${report.files} files (${humanBytes(report.bytes)}) to ` +
        `${workdir}: archive ${humanBytes(report.archiveBytes)} in ` +
        `${report.chunks} chunks, ${report.deleted} deleted, ${seconds}s.`
    )
    return report
  } catch (e) {
    // Parts still in flight would recreate the temp dir after the cleanup.
    await removals.settle()
    await archive.settle()
    await cleanup(exec, tempDir, log)
    throw e
  }
}

function checkOptions(chunkBytes: number, concurrency: number): void {
  if (
    !Number.isInteger(chunkBytes) ||
    chunkBytes < MIN_PART_BYTES ||
    partCommandBytes(chunkBytes) > MAX_COMMAND_BYTES
  ) {
    throw new RangeError(
      `chunkBytes ${chunkBytes} must be a whole number from ` +
        `${MIN_PART_BYTES} up to what keeps one command under ` +
        `${MAX_COMMAND_BYTES} bytes (about 88 KiB).`
    )
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency ${concurrency} must be 1 or more.`)
  }
}

/**
 * The paths the last sync into `workdir` wrote, or null on a first sync.
 * Unsafe or bookkeeping paths are dropped: the manifest lives in the
 * guest, and nothing outside the workdir may ever be removed.
 */
async function readPreviousManifest(
  exec: GuestExec,
  workdir: string
): Promise<string[] | null> {
  const r = await exec(readManifestCommand(workdir), {
    idempotent: true,
    timeoutSeconds: READ_TIMEOUT_SECONDS
  })
  const lines = r.stdout.split('\n').map((l) => l.trim())
  if (r.exitCode === 0 && lines.includes(MANIFEST_ABSENT)) return null
  const end = lines.indexOf(MANIFEST_PRESENT)
  const b64 = lines.slice(0, Math.max(end, 0)).join('')
  if (r.exitCode !== 0 || end < 0 || !/^[A-Za-z0-9+/=]*$/.test(b64)) {
    throw new Error(
      `Reading the previous sync manifest ${workdir}/${MANIFEST_PATH} in ` +
        `the sandbox failed with exit code ${r.exitCode}: ` +
        `${excerpt(r.stderr)}. Remove that file in the sandbox to start ` +
        'over with a full sync that deletes nothing.'
    )
  }
  return Buffer.from(b64, 'base64')
    .toString('utf8')
    .split('\0')
    .filter(
      (p) =>
        isSafeRelativePath(p) &&
        p !== STATE_DIR &&
        !p.startsWith(`${STATE_DIR}/`)
    )
}

/**
 * The manifest and the sync id go last in the archive, so they land only
 * after every file did.
 */
function manifestEntries(
  list: FileList,
  syncId: string
): { name: string; data: Buffer }[] {
  const manifest = Buffer.from(
    list.files.map((f) => `${f.path}\0`).join(''),
    'utf8'
  )
  return [
    { name: MANIFEST_PATH, data: manifest },
    { name: SYNC_ID_PATH, data: Buffer.from(`${syncId}\n`) }
  ]
}

async function runFinal(
  exec: GuestExec,
  workdir: string,
  syncId: string,
  script: Parameters<typeof finalCommand>[0]
): Promise<void> {
  const command = finalCommand(script)
  if (Buffer.byteLength(command) > MAX_COMMAND_BYTES) {
    throw new Error(
      `Internal error: the final sync command is ${command.length} bytes.`
    )
  }
  // Safe to send again: the guest script locks against a second run.
  const r = await exec(command, {
    idempotent: true,
    timeoutSeconds: FINAL_TIMEOUT_SECONDS
  })
  if (r.exitCode === 0 && r.stdout.includes(`${SYNC_MARKER} ${syncId}`)) {
    return
  }
  const step = failedStep(r.stderr)
  const what =
    step === undefined
      ? `the final sync step ended without its success marker`
      : STEP_TEXT[step]
  throw new Error(
    `Syncing into ${workdir} failed: ${what} (exit code ${r.exitCode}). ` +
      `Sandbox stderr: ${excerpt(stripStepLines(r.stderr))}`
  )
}

function failedStep(stderr: string): FinalStep | undefined {
  for (const line of stderr.split('\n')) {
    if (line.startsWith(FAILED_STEP_PREFIX)) {
      const step = line.slice(FAILED_STEP_PREFIX.length).trim()
      if (step in STEP_TEXT) return step as FinalStep
    }
  }
  return undefined
}

function stripStepLines(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !l.startsWith(FAILED_STEP_PREFIX))
    .join('\n')
}

async function cleanup(
  exec: GuestExec,
  tempDir: string,
  log: SyncLog
): Promise<void> {
  try {
    await exec(cleanupCommand(tempDir), {
      idempotent: true,
      timeoutSeconds: CLEANUP_TIMEOUT_SECONDS
    })
  } catch (e) {
    log.debug(`Removing ${tempDir} after the failed sync failed: ${String(e)}`)
  }
}
