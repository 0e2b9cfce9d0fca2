import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash, randomBytes } from 'node:crypto'
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { ApiError, TransportError } from '../../src/smolfleet/errors.js'
import type { GuestExec } from '../../src/smolfleet/types.js'
import {
  checkSyncRoot,
  listSyncFiles,
  syncToGuest,
  type FileList,
  type SyncLog,
  type SyncReport
} from '../../src/sync/index.js'
import {
  createBusyboxGuest,
  type BusyboxGuest
} from '../helpers/busybox-guest.js'
import { git } from '../helpers/repo.js'

const LIMIT = 128 * 1024
const scratch = mkdtempSync(join(tmpdir(), 'sync-guest-'))
let guest: BusyboxGuest

beforeAll(async () => {
  guest = await createBusyboxGuest()
})
afterAll(async () => {
  await guest.close()
  rmSync(scratch, { recursive: true, force: true })
})

const quietLog: SyncLog = {
  info: () => undefined,
  warning: () => undefined,
  debug: () => undefined
}

function write(root: string, path: string, content: string | Buffer): void {
  mkdirSync(dirname(join(root, path)), { recursive: true })
  writeFileSync(join(root, path), content)
}

function newRepo(name: string): string {
  const root = join(scratch, name)
  mkdirSync(root, { recursive: true })
  git(root, 'init', '-q')
  return root
}

/** Every exec command goes through here so the tests can watch them. */
function watched(inner: GuestExec): GuestExec & { sizes: number[] } {
  const sizes: number[] = []
  const exec = (async (command, options) => {
    sizes.push(Buffer.byteLength(command))
    return inner(command, options)
  }) as GuestExec & { sizes: number[] }
  exec.sizes = sizes
  return exec
}

async function sync(
  root: string,
  workdir: string,
  exec: GuestExec = guest.exec,
  extra: { chunkBytes?: number; concurrency?: number } = {}
): Promise<{ list: FileList; report: SyncReport }> {
  const list = await listSyncFiles(await checkSyncRoot(root), [])
  const report = await syncToGuest({
    list,
    workdir,
    exec,
    log: quietLog,
    ...extra
  })
  return { list, report }
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

/** Relative paths of files and symlinks under `dir`, as the host sees them. */
function walk(dir: string, prefix = ''): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + e.name
    if (e.isDirectory()) out.push(...walk(join(dir, e.name), `${rel}/`))
    else out.push(rel)
  }
  return out.sort()
}

/** Asserts the guest dir holds exactly the list, byte for byte. */
function expectMirrors(
  list: FileList,
  guestDir: string,
  extra: string[] = []
): void {
  const want = [
    ...list.files.map((f) => f.path),
    '.smolvm-action/manifest',
    '.smolvm-action/sync-id',
    ...extra
  ].sort()
  expect(walk(guestDir)).toEqual(want)
  for (const f of list.files) {
    const host = join(list.root, f.path)
    const inGuest = join(guestDir, f.path)
    const st = lstatSync(inGuest)
    if (f.kind === 'symlink') {
      expect(st.isSymbolicLink()).toBe(true)
      expect(readlinkSync(inGuest)).toBe(readlinkSync(host))
    } else {
      expect({ path: f.path, sha: sha(inGuest) }).toEqual({
        path: f.path,
        sha: sha(host)
      })
      expect(st.mode & 0o111 ? 'exec' : 'plain').toBe(
        lstatSync(host).mode & 0o111 ? 'exec' : 'plain'
      )
    }
  }
}

describe('syncToGuest into a busybox guest', () => {
  let root: string
  const workdir = '/workspace/proj'
  const guestDir = (): string => join(guest.root, 'workspace/proj')
  const long = `${'d'.repeat(100)}/${'é'.repeat(60)}/${'f'.repeat(70)}.txt`

  beforeAll(() => {
    const sub = newRepo('sub-src')
    write(sub, 'lib.txt', 'submodule file\n')
    git(sub, 'add', '-A')
    git(sub, 'commit', '-qm', 'sub')

    root = newRepo('proj')
    write(root, '.gitignore', 'ignored.log\n')
    write(root, '.crabboxignore', 'secret\n!keep.tmp\n')
    write(root, 'README.md', '# proj\n')
    write(root, 'bin/run.sh', '#!/bin/sh\necho run\n')
    chmodSync(join(root, 'bin/run.sh'), 0o755)
    write(root, 'unicode ü/文件 名.txt', 'unicode\n')
    write(root, `quote's "dq" $x.txt`, 'quotes\n')
    write(root, 'new\nline.txt', 'newline in name\n')
    write(root, long, 'long path\n')
    write(root, 'node_modules/dep/index.js', 'excluded\n')
    write(root, 'dist/x.js', 'tracked build output\n')
    write(root, 'secret/key', 'excluded by .crabboxignore\n')
    write(root, 'keep.tmp', 'kept\n')
    write(root, 'thing', 'a file that becomes a directory\n')
    write(root, 'olddir/a.txt', 'a directory that becomes a file\n')
    write(root, 'empty.txt', '')
    symlinkSync('README.md', join(root, 'link'))
    symlinkSync(`../${'x'.repeat(120)}/é`, join(root, 'dangling'))
    git(root, 'add', '-A')
    git(root, 'add', '-f', 'node_modules', 'dist')
    git(root, 'submodule', '-q', 'add', join(scratch, 'sub-src'), 'sub')
    git(root, 'commit', '-qm', 'init')
    write(root, 'ignored.log', 'ignored\n')
    write(root, 'untracked.txt', 'untracked\n')
  })

  it('mirrors the file list with contents, exec bits and symlinks', async () => {
    const exec = watched(guest.exec)
    const { list, report } = await sync(root, workdir, exec)

    const paths = list.files.map((f) => f.path)
    expect(paths).toEqual(
      expect.arrayContaining(['sub/lib.txt', 'untracked.txt', 'keep.tmp', long])
    )
    expect(Buffer.byteLength(long)).toBeGreaterThan(255)
    for (const out of [
      'ignored.log',
      'secret/key',
      'node_modules/dep/index.js'
    ]) {
      expect(paths).not.toContain(out)
    }
    expectMirrors(list, guestDir())
    expect(report).toMatchObject({ files: list.files.length, deleted: 0 })
    expect(Math.max(...exec.sizes)).toBeLessThan(LIMIT)
    // Nothing is left behind in the guest's /tmp.
    expect(readdirSync(join(guest.root, 'tmp'))).toEqual([])

    // The guest itself sees the same bytes.
    const r = await guest.exec(`sha256sum ${workdir}/bin/run.sh`)
    expect(r.stdout.split(' ')[0]).toBe(sha(join(root, 'bin/run.sh')))
  })

  it('adds, updates and deletes on the next sync, sparing guest-made files', async () => {
    const made = await guest.exec(
      `echo mine > ${workdir}/guest-only.txt && mkdir -p ${workdir}/bin/cache && ` +
        `echo mine > ${workdir}/bin/cache/x`
    )
    expect(made.exitCode).toBe(0)

    write(root, 'README.md', '# proj, changed\n')
    write(root, 'added/new.txt', 'new\n')
    rmSync(join(root, 'bin/run.sh'))
    rmSync(join(root, 'unicode ü'), { recursive: true })
    rmSync(join(root, 'thing'))
    write(root, 'thing/inner.txt', 'now a directory\n')
    rmSync(join(root, 'olddir'), { recursive: true })
    write(root, 'olddir', 'now a file\n')
    rmSync(join(root, 'link'))
    symlinkSync('added/new.txt', join(root, 'link'))

    const { list, report } = await sync(root, workdir)
    expectMirrors(list, guestDir(), ['guest-only.txt', 'bin/cache/x'])
    // run.sh, the unicode file, thing and olddir/a.txt left the list.
    expect(report.deleted).toBe(4)
    // The emptied unicode directory was pruned.
    expect(readdirSync(guestDir())).not.toContain('unicode ü')
  })

  it('syncs a few MiB of incompressible data in bounded parts', async () => {
    const big = newRepo('big')
    write(big, 'random.bin', randomBytes(5 * 1024 * 1024))
    write(big, 'small.txt', 'small\n')
    git(big, 'add', '-A')
    git(big, 'commit', '-qm', 'big')

    let inFlight = 0
    let maxInFlight = 0
    const exec = watched(async (command, options) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      try {
        return await guest.exec(command, options)
      } finally {
        inFlight--
      }
    })
    const started = Date.now()
    const { list, report } = await sync(big, '/workspace/big', exec)
    const ms = Date.now() - started

    expectMirrors(list, join(guest.root, 'workspace/big'))
    expect(report.chunks).toBeGreaterThanOrEqual(80)
    expect(report.archiveBytes).toBeGreaterThan(5 * 1024 * 1024)
    expect(Math.max(...exec.sizes)).toBeLessThan(LIMIT)
    expect(maxInFlight).toBeLessThanOrEqual(4)
    console.log(
      `5 MiB random: ${report.chunks} chunks, ${exec.sizes.length} execs, ` +
        `largest command ${Math.max(...exec.sizes)} bytes, ${ms} ms`
    )
  })

  it('splits parts the API refuses as too large (HTTP 413)', async () => {
    const repo = newRepo('split')
    write(repo, 'random.bin', randomBytes(1024 * 1024))
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', 'split')

    let refused = 0
    const accepted: number[] = []
    const exec: GuestExec = async (command, options) => {
      const size = Buffer.byteLength(command)
      if (size > 40 * 1024) {
        refused++
        throw new ApiError(413, 'request entity too large')
      }
      accepted.push(size)
      return guest.exec(command, options)
    }
    const { list, report } = await sync(repo, '/workspace/split', exec)

    expectMirrors(list, join(guest.root, 'workspace/split'))
    expect(refused).toBeGreaterThan(0)
    expect(Math.max(...accepted)).toBeLessThanOrEqual(40 * 1024)
    // 1 MiB in parts of at most 32 KiB.
    expect(report.chunks).toBeGreaterThanOrEqual(32)
  })

  it('gives up when even a 1 KiB part is refused', async () => {
    const repo = newRepo('refused')
    write(repo, 'random.bin', randomBytes(64 * 1024))
    const exec: GuestExec = async (command, options) => {
      if (command.includes('base64 -d')) throw new ApiError(413, 'too large')
      return guest.exec(command, options)
    }
    await expect(sync(repo, '/workspace/refused', exec)).rejects.toThrow(
      /refused a \d+-byte archive upload as too large \(HTTP 413\)/
    )
    expect(readdirSync(join(guest.root, 'tmp'))).toEqual([])
  })

  it('survives every command being delivered twice', async () => {
    const repo = newRepo('twice')
    write(repo, 'random.bin', randomBytes(300 * 1024))
    write(repo, 'a.txt', 'a\n')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', 'twice')
    await sync(repo, '/workspace/twice')
    write(repo, 'b.txt', 'b\n')
    rmSync(join(repo, 'a.txt'))

    // As a client retry after a lost answer would: the command runs, then
    // runs again, and only the second answer is seen.
    const exec: GuestExec = async (command, options) => {
      await guest.exec(command, options)
      return guest.exec(command, options)
    }
    const { list, report } = await sync(repo, '/workspace/twice', exec, {
      chunkBytes: 32 * 1024
    })
    expectMirrors(list, join(guest.root, 'workspace/twice'))
    expect(report.deleted).toBe(1)
  })

  it('uploads a long removal list as parts', async () => {
    const repo = newRepo('many')
    const names = Array.from(
      { length: 600 },
      (_, i) => `dir ${i % 7}/file with a rather long name ${i}.txt`
    )
    for (const n of names) write(repo, n, `${n}\n`)
    write(repo, 'stays.txt', 'stays\n')
    await sync(repo, '/workspace/many')
    for (let i = 0; i < 7; i++)
      rmSync(join(repo, `dir ${i}`), { recursive: true })

    const exec = watched(guest.exec)
    const { list, report } = await sync(repo, '/workspace/many', exec)
    expect(report.deleted).toBe(600)
    expectMirrors(list, join(guest.root, 'workspace/many'))
    expect(readdirSync(join(guest.root, 'workspace/many')).sort()).toEqual([
      '.smolvm-action',
      'stays.txt'
    ])
    // Read manifest, removal parts, archive part, final.
    expect(exec.sizes.length).toBeGreaterThan(3)
    expect(Math.max(...exec.sizes)).toBeLessThan(LIMIT)
  })

  it('passes a transport failure on and cleans up the temp dir', async () => {
    const repo = newRepo('transport')
    write(repo, 'random.bin', randomBytes(200 * 1024))
    let parts = 0
    const exec: GuestExec = async (command, options) => {
      if (command.includes('base64 -d') && ++parts === 2) {
        throw new TransportError('socket hang up', true)
      }
      return guest.exec(command, options)
    }
    await expect(sync(repo, '/workspace/transport', exec)).rejects.toThrow(
      'socket hang up'
    )
    expect(readdirSync(join(guest.root, 'tmp'))).toEqual([])
  })

  it('refuses a corrupted part before touching the workdir', async () => {
    const repo = newRepo('corrupt')
    write(repo, 'random.bin', randomBytes(200 * 1024))
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', 'corrupt')

    let corrupted = false
    const exec: GuestExec = async (command, options) => {
      if (!corrupted && command.includes('base64 -d')) {
        corrupted = true
        // Swap one base64 character for another: still decodes, wrong bytes.
        const lines = command.split('\n')
        const line = lines[1] ?? ''
        lines[1] = (line[0] === 'A' ? 'B' : 'A') + line.slice(1)
        return guest.exec(lines.join('\n'), options)
      }
      return guest.exec(command, options)
    }
    await expect(sync(repo, '/workspace/corrupt', exec)).rejects.toThrow(
      /the archive checksum in the sandbox did not match.*FAILED/s
    )
    expect(readdirSync(join(guest.root, 'workspace'))).not.toContain('corrupt')
    expect(readdirSync(join(guest.root, 'tmp'))).toEqual([])
  })

  it('reports a failed extraction with the guest stderr', async () => {
    const repo = newRepo('blocked')
    write(repo, 'blocked', 'a file where the guest has a directory\n')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', 'blocked')
    const made = await guest.exec(
      'mkdir -p /workspace/blocked/blocked && echo x > /workspace/blocked/blocked/x'
    )
    expect(made.exitCode).toBe(0)

    await expect(sync(repo, '/workspace/blocked')).rejects.toThrow(
      'Syncing into /workspace/blocked failed: extracting the archive into ' +
        'the workdir failed (exit code 1). Sandbox stderr: tar: ' +
        "can't remove old file blocked: Is a directory"
    )
    expect(readdirSync(join(guest.root, 'tmp'))).toEqual([])
  })
})

describe('upload failures', () => {
  it.each([
    [
      'an API error',
      () => new ApiError(500, 'smolfleet POST /exec answered 500')
    ],
    [
      'a lost connection',
      () => new TransportError('smolfleet POST /exec failed: reset', true)
    ]
  ])(
    '%s on a part rejects the sync instead of crashing',
    async (_what, failure) => {
      const root = newRepo(`upload-fails-${randomBytes(3).toString('hex')}`)
      write(root, 'big.bin', randomBytes(1024 * 1024))
      let parts = 0
      const failing: GuestExec = async (command, options) => {
        if (command.includes('smolvm-action-part') && ++parts > 3)
          throw failure()
        return guest.exec(command, options)
      }
      await expect(
        sync(root, '/workspace/upload-fails', failing)
      ).rejects.toThrow(failure().message)
      // Nothing is left behind that would emit an error later.
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  )
})
