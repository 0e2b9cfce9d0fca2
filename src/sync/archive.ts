import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import tarStream, { type Header, type Pack } from 'tar-stream'
import type { FileList, SyncFile } from './types.js'

export interface ExtraEntry {
  name: string
  data: Buffer
}

type EntryHeader = Partial<Header> & { name: string }
type Entry = ReturnType<Pack['entry']>

// Opening files one after another costs a thread-pool round trip each,
// which dominates for many small files, so small files are read ahead in
// parallel. The byte budget keeps memory bounded.
const SMALL_FILE_BYTES = 256 * 1024
const READ_AHEAD_FILES = 64
const READ_AHEAD_BYTES = 8 * 1024 * 1024
const GZIP_BATCH_BYTES = 64 * 1024

/**
 * Streams `list` as a gzipped tar into `sink`, one file at a time, then the
 * `trailer` entries. Owners are root and modes are 0755 or 0644, so the
 * archive says the same on any runner. tar-stream writes a pax header for
 * a non-ASCII or long name or link target; busybox tar reads its `path`
 * and `linkpath`.
 */
export async function writeArchive(
  list: FileList,
  trailer: ExtraEntry[],
  sink: Writable
): Promise<void> {
  const pack = tarStream.pack()
  // tar-stream's streams are streamx streams; node's pipeline takes them
  // reliably only as an async iterable.
  // Errors of the pack and its entries are reported through `done` and the
  // producer; without listeners a torn-down stream would throw uncaught.
  pack.on('error', () => undefined)
  const done = pipeline(chunksOf(pack), createGzip(), sink)
  // When the upload fails the producer below may be waiting on the pack,
  // which a torn-down stream never answers: stop waiting at once.
  let stop: (e: Error) => void = () => undefined
  const stopped = new Promise<never>((_resolve, reject) => {
    stop = reject
  })
  stopped.catch(() => undefined)
  done.catch((e: unknown) => {
    pack.destroy(asError(e))
    stop(asError(e))
  })
  const step = async (work: Promise<void>): Promise<void> => {
    work.catch(() => undefined)
    await Promise.race([work, stopped])
  }

  let producerError: Error | undefined
  const ahead = new ReadAhead(list)
  try {
    for (let i = 0; i < list.files.length; i++) {
      ahead.fill(i)
      await step(
        addFile(pack, list.root, list.files[i] as SyncFile, ahead.take(i))
      )
    }
    const mtime = new Date()
    for (const e of trailer) {
      await step(addBuffer(pack, { name: e.name, mode: 0o644, mtime }, e.data))
    }
    pack.finalize()
  } catch (e) {
    producerError = asError(e)
    pack.destroy(producerError)
  }
  // A file that changed is reported as such, not as the torn-down stream
  // it caused. (When the upload failed, the caller reports that instead.)
  try {
    await done
  } catch (e) {
    throw producerError ?? e
  }
  if (producerError !== undefined) throw producerError
}

/**
 * The pack emits a few hundred bytes per small file, and each write into
 * gzip is a separate job in node's thread pool, queued behind file reads;
 * batching keeps gzip from becoming the bottleneck.
 */
async function* chunksOf(pack: Pack): AsyncGenerator<Buffer> {
  let batch: Buffer[] = []
  let size = 0
  for await (const chunk of pack) {
    batch.push(chunk as Buffer)
    size += (chunk as Buffer).length
    if (size >= GZIP_BATCH_BYTES) {
      yield Buffer.concat(batch)
      batch = []
      size = 0
    }
  }
  if (size > 0) yield Buffer.concat(batch)
}

/** Reads the small files after the current one, within a byte budget. */
class ReadAhead {
  private readonly reads = new Map<number, Promise<Buffer>>()
  private next = 0
  private bytes = 0

  constructor(private readonly list: FileList) {}

  /** Starts reads for the files after `current` while the budget allows. */
  fill(current: number): void {
    const files = this.list.files
    this.next = Math.max(this.next, current)
    while (this.next < files.length && this.next < current + READ_AHEAD_FILES) {
      const f = files[this.next] as SyncFile
      if (f.kind === 'file' && f.size > 0 && f.size <= SMALL_FILE_BYTES) {
        if (this.reads.size > 0 && this.bytes + f.size > READ_AHEAD_BYTES) {
          return
        }
        const read = readFile(join(this.list.root, f.path))
        // Settled later by take(); a failed run may never take it.
        read.catch(() => undefined)
        this.reads.set(this.next, read)
        this.bytes += f.size
      }
      this.next++
    }
  }

  /** The read started for file `i`, if any; frees its budget. */
  take(i: number): Promise<Buffer> | undefined {
    const read = this.reads.get(i)
    if (read !== undefined) {
      this.reads.delete(i)
      this.bytes -= (this.list.files[i] as SyncFile).size
    }
    return read
  }
}

async function addFile(
  pack: Pack,
  root: string,
  f: SyncFile,
  read: Promise<Buffer> | undefined
): Promise<void> {
  const header: EntryHeader = {
    name: f.path,
    mode: f.kind === 'symlink' ? 0o777 : f.mode & 0o111 ? 0o755 : 0o644,
    mtime: f.mtimeMs === undefined ? new Date() : new Date(f.mtimeMs),
    uid: 0,
    gid: 0
  }
  if (f.kind === 'symlink') {
    const link = { ...header, type: 'symlink', linkname: f.linkTarget } as const
    await addBuffer(pack, link, undefined)
    return
  }
  if (f.size === 0 || read !== undefined) {
    let data: Buffer
    try {
      data = read === undefined ? Buffer.alloc(0) : await read
    } catch (e) {
      throw changed(f, e)
    }
    if (data.length !== f.size) {
      throw changed(f, new Error(`${data.length} bytes, listed ${f.size}`))
    }
    await addBuffer(pack, { ...header, type: 'file' }, data)
    return
  }

  let entry: Entry | undefined
  const finished = new Promise<void>((resolve, reject) => {
    const h = { ...header, type: 'file', size: f.size } as const
    entry = pack.entry(h, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
  finished.catch(() => undefined)
  if (entry === undefined) throw new Error('tar-stream returned no entry')
  entry.on('error', () => undefined)
  try {
    await copyInto(entry, join(root, f.path), f.size)
  } catch (e) {
    const error = changed(f, e)
    entry.destroy(error)
    throw error
  }
  try {
    await finished
  } catch (e) {
    throw changed(f, e)
  }
}

/**
 * Copies the file into the entry, waiting whenever the entry is full. One
 * byte past `size` is read so a file that grew is noticed; one that shrank
 * fails tar-stream's own size check.
 */
async function copyInto(
  entry: Entry,
  path: string,
  size: number
): Promise<void> {
  let seen = 0
  for await (const chunk of createReadStream(path, { end: size })) {
    seen += (chunk as Buffer).length
    if (seen > size) throw new Error('it grew while being read')
    if (!entry.write(chunk) && !(await drained(entry))) return
  }
  entry.end(undefined)
}

/** Resolves true on 'drain', false when the entry was torn down instead. */
function drained(entry: Entry): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = (ok: boolean): void => {
      entry.off('drain', onDrain)
      entry.off('close', onClose)
      resolve(ok)
    }
    const onDrain = (): void => {
      settle(true)
    }
    const onClose = (): void => {
      settle(false)
    }
    entry.on('drain', onDrain)
    entry.on('close', onClose)
  })
}

function addBuffer(
  pack: Pack,
  header: EntryHeader,
  data: Buffer | undefined
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null): void => {
      if (err) reject(err)
      else resolve()
    }
    if (data === undefined) pack.entry(header, cb)
    else pack.entry(header, data, cb)
  })
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e))
}

function changed(f: SyncFile, cause: unknown): Error {
  return new Error(
    `Archiving ${f.path} failed (${asError(cause).message}); it changed or ` +
      'vanished after the file list was made. Make sure nothing writes to ' +
      'the checkout while the sync runs.'
  )
}
