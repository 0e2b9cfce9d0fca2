// A stand-in for a smolfleet guest: every command runs in a fresh bwrap
// sandbox whose only program is a static busybox, with /workspace and /tmp
// backed by host directories. The command travels as ONE argv string, so
// Linux's 128 KiB limit on a single argument applies as in a real guest.
import { execFileSync, spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecResult, GuestExec } from '../../src/smolfleet/types.js'

export interface BusyboxGuest {
  exec: GuestExec
  /** Host directory backing the guest's `/` (holds workspace/ and tmp/). */
  root: string
  close(): Promise<void>
}

const BUSYBOX = '/bin/busybox'

let applets: string[] | undefined

function listApplets(): string[] {
  applets ??= execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a !== '' && a !== 'busybox')
  return applets
}

export async function createBusyboxGuest(): Promise<BusyboxGuest> {
  const root = await mkdtemp(join(tmpdir(), 'busybox-guest-'))
  await mkdir(join(root, 'workspace'))
  await mkdir(join(root, 'tmp'))

  const base = [
    '--unshare-all',
    '--die-with-parent',
    '--ro-bind',
    BUSYBOX,
    '/bin/busybox',
    ...listApplets().flatMap((a) => ['--symlink', 'busybox', `/bin/${a}`]),
    '--bind',
    join(root, 'workspace'),
    '/workspace',
    '--bind',
    join(root, 'tmp'),
    '/tmp',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--clearenv',
    '--setenv',
    'PATH',
    '/bin',
    '--chdir',
    '/'
  ]

  const exec: GuestExec = (command) =>
    new Promise<ExecResult>((resolve, reject) => {
      const child = spawn('bwrap', [...base, '/bin/sh', '-c', command], {
        stdio: ['ignore', 'pipe', 'pipe']
      })
      const out: Buffer[] = []
      const err: Buffer[] = []
      child.stdout.on('data', (b: Buffer) => out.push(b))
      child.stderr.on('data', (b: Buffer) => err.push(b))
      // E2BIG (argument too long) arrives here, as a failed request would.
      child.on('error', reject)
      child.on('close', (code, signal) => {
        resolve({
          exitCode: code ?? 128 + (signal === null ? 0 : 9),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8')
        })
      })
    })

  return {
    exec,
    root,
    close: () => rm(root, { recursive: true, force: true })
  }
}
