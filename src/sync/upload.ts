import type { Hash } from 'node:crypto'
import { Writable } from 'node:stream'
import { ApiError } from '../smolfleet/errors.js'
import type { GuestExec } from '../smolfleet/types.js'
import { humanBytes } from './format.js'
import { assertCommandSize, PART_MARKER, partCommand } from './guest-scripts.js'
import type { SyncLog } from './types.js'

/** Below this a 413 is not the payload's fault; splitting stops. */
export const MIN_PART_BYTES = 1024
const PART_TIMEOUT_SECONDS = 120
const STDERR_SHOWN = 2000

export interface PartUploaderOptions {
  exec: GuestExec
  /** Guest directory the parts are written to. */
  dir: string
  /** What the parts are, for messages ("archive", "removal list"). */
  what: string
  partBytes: number
  concurrency: number
  log: SyncLog
}

/**
 * Uploads numbered parts with a bounded number of execs in flight. `add`
 * returns once the part is in flight, waiting while all slots are busy;
 * that wait is what pauses the archive stream and bounds memory.
 */
export class PartUploader {
  /** Current part size; shrinks when the API refuses a part as too large. */
  partBytes: number
  /** Part files written, counting each piece of a split part. */
  parts = 0
  private next = 0
  private readonly inFlight = new Set<Promise<void>>()
  private firstFailure: Error | undefined

  constructor(private readonly o: PartUploaderOptions) {
    this.partBytes = o.partBytes
  }

  /** The first upload that failed, if any. */
  get failure(): Error | undefined {
    return this.firstFailure
  }

  async add(data: Buffer): Promise<void> {
    while (
      this.firstFailure === undefined &&
      this.inFlight.size >= this.o.concurrency
    ) {
      await Promise.race(this.inFlight)
    }
    if (this.firstFailure !== undefined) throw this.firstFailure

    // Fixed-width names sort in upload order; split pieces append letters.
    const name = String(this.next++).padStart(8, '0')
    const p: Promise<void> = this.send(name, data, [])
      .catch((e: unknown) => {
        this.firstFailure ??= e instanceof Error ? e : new Error(String(e))
      })
      .finally(() => this.inFlight.delete(p))
    this.inFlight.add(p)
  }

  /** Waits for every part in flight and throws the first failure. */
  async drain(): Promise<void> {
    await this.settle()
    if (this.firstFailure !== undefined) throw this.firstFailure
  }

  /** Waits for every part in flight, ignoring failures. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight)
  }

  private async send(
    name: string,
    data: Buffer,
    stale: string[]
  ): Promise<void> {
    const command = partCommand(this.o.dir, name, data, stale)
    assertCommandSize(command)
    let r
    try {
      r = await this.o.exec(command, {
        idempotent: true,
        timeoutSeconds: PART_TIMEOUT_SECONDS
      })
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 413) throw e
      await this.split(name, data, stale)
      return
    }
    if (r.exitCode !== 0 || !r.stdout.includes(`${PART_MARKER} ${name}`)) {
      throw new Error(
        `Uploading ${this.o.what} part ${name} (${humanBytes(data.length)}) ` +
          `into the sandbox failed with exit code ${r.exitCode}: ` +
          excerpt(r.stderr)
      )
    }
    this.parts++
  }

  /**
   * The API refused the request as too large: send the part as two halves
   * named `<name>a` and `<name>b`, which sort right after `<name>`, and cut
   * later parts no larger than what is tried now.
   */
  private async split(
    name: string,
    data: Buffer,
    stale: string[]
  ): Promise<void> {
    if (data.length <= MIN_PART_BYTES) {
      throw new Error(
        `The sandbox API refused a ${data.length}-byte ${this.o.what} ` +
          'upload as too large (HTTP 413); its request size limit is below ' +
          'what a sync needs.'
      )
    }
    const half = Math.ceil(data.length / 2)
    if (half < this.partBytes) {
      this.partBytes = half
      this.o.log.info(
        `The sandbox API refused a ${humanBytes(data.length)} upload as too ` +
          `large (HTTP 413); sending parts of ${humanBytes(half)} instead.`
      )
    }
    const replaced = [...stale, name]
    await this.send(`${name}a`, data.subarray(0, half), replaced)
    await this.send(`${name}b`, data.subarray(half), replaced)
  }
}

/**
 * A writable that hashes and counts what passes through it and cuts it
 * into parts for `uploader`. Its write callback waits for a free upload
 * slot, so the stream feeding it pauses instead of buffering.
 */
export class PartSink extends Writable {
  bytes = 0
  private pending: Buffer[] = []
  private pendingBytes = 0

  constructor(
    private readonly uploader: PartUploader,
    private readonly hash: Hash
  ) {
    super()
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void
  ): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    this.cut(false).then(() => {
      callback()
    }, callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.cut(true)
      .then(() => this.uploader.drain())
      .then(() => {
        callback()
      }, callback)
  }

  private async cut(all: boolean): Promise<void> {
    while (
      this.pendingBytes >= this.uploader.partBytes ||
      (all && this.pendingBytes > 0)
    ) {
      const joined = Buffer.concat(this.pending)
      const size = Math.min(this.uploader.partBytes, joined.length)
      this.pending = [joined.subarray(size)]
      this.pendingBytes = joined.length - size
      await this.uploader.add(joined.subarray(0, size))
    }
  }
}

export function excerpt(text: string): string {
  const t = text.trim()
  if (t === '') return '(no output on stderr)'
  return t.length > STDERR_SHOWN ? `${t.slice(0, STDERR_SHOWN)}...` : t
}
