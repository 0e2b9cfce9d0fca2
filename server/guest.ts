// The guests of the local smolfleet server. Each machine is a directory on
// the host that becomes the root of a bubblewrap sandbox with a busybox
// userland, so commands meet a small Linux much like the hosted alpine image:
// busybox sh, private /workspace and /tmp, no network unless it is open.

import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { constants, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Writable } from 'node:stream'
import { promisify } from 'node:util'
import { errorCode, errorMessage, MAX_TIMER_MS } from './errors.js'

const INSTALL_HINT = 'apt-get install -y bubblewrap busybox-static'

/** Top-level guest paths that are mounts, not part of the machine's disk. */
const MOUNTED_DIRS = ['bin', 'proc', 'dev', 'sys']

// The command string reaches the guest on fd 3 rather than as an argument:
// then the guest shell itself meets the kernel's 128 KiB limit on a single
// argument (MAX_ARG_STRLEN) when it runs `sh -c`, as on a real machine,
// instead of the host failing to start bwrap. The trailing "." keeps the
// script's own trailing newlines.
const SCRIPT_WRAPPER = [
  'cd "$1" || exit 1',
  'script=$(cat <&3; echo .) && exec 3<&-',
  'exec /bin/sh -c "${script%.}" sh'
].join('\n')

// An argv command runs directly; a missing executable answers 255 like the
// hosted guest agent, not the shell's 127.
const ARGV_WRAPPER = [
  'cd "$1" || exit 1',
  'shift',
  'if ! command -v "$1" >/dev/null 2>&1; then',
  '  echo "exec: \\"$1\\": executable file not found in \\$PATH" >&2',
  '  exit 255',
  'fi',
  'exec "$@"'
].join('\n')

const GUEST_PATH = '/bin:/usr/bin:/sbin:/usr/sbin'

export interface ExecSpec {
  command: string | string[]
  cwd: string
  env: Record<string, string>
  stdin?: string
  timeoutSeconds?: number
  network: boolean
  hostname: string
}

export interface ExecOutcome {
  exitCode: number
  timedOut: boolean
  /** Killed by a stop, a delete or the server closing. */
  killed: boolean
}

export interface RunningCommand {
  done: Promise<ExecOutcome>
  kill(): void
}

export type OutputSink = (stream: 'stdout' | 'stderr', chunk: Buffer) => void

/** A guest path the files endpoint refuses, with the reason. */
export class GuestPathError extends Error {}

export class GuestHost {
  private constructor(
    readonly dataDir: string,
    private readonly bwrap: string,
    private readonly binDir: string
  ) {}

  /**
   * Finds bwrap and busybox, builds the shared read-only /bin under
   * dataDir, and runs one probe command so a host that cannot run
   * sandboxes fails here with the fix instead of on the first exec.
   */
  static async open(dataDir: string): Promise<GuestHost> {
    const bwrap = await findExecutable('bwrap', ['/usr/bin/bwrap'])
    const busybox = await findExecutable('busybox', [
      '/bin/busybox',
      '/usr/bin/busybox'
    ])
    if (bwrap === undefined || busybox === undefined) {
      const missing = bwrap === undefined ? 'bwrap' : 'busybox'
      throw new Error(
        `The local smolfleet server needs ${missing} to run guests, and it ` +
          `is not installed. Install it with: ${INSTALL_HINT}`
      )
    }

    const binDir = path.join(dataDir, '.rootfs', 'bin')
    await buildBin(busybox, binDir)
    const host = new GuestHost(dataDir, bwrap, binDir)
    await host.probe()
    return host
  }

  rootOf(machineId: string): string {
    return path.join(this.dataDir, machineId)
  }

  /** Lays out a machine's disk: the guest root with its writable dirs. */
  async create(machineId: string, workdir: string): Promise<void> {
    const root = this.rootOf(machineId)
    for (const dir of ['workspace', 'root', 'etc', 'usr', 'var', 'bin']) {
      await fs.mkdir(path.join(root, dir), { recursive: true })
    }
    await makeTmp(path.join(root, 'tmp'))
    await fs.chmod(path.join(root, 'root'), 0o700)
    await fs.symlink('/bin', path.join(root, 'sbin'))
    await fs.symlink('/bin', path.join(root, 'usr', 'bin'))
    await fs.symlink('/bin', path.join(root, 'usr', 'sbin'))

    const etc = path.join(root, 'etc')
    await fs.writeFile(
      path.join(etc, 'passwd'),
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n'
    )
    await fs.writeFile(path.join(etc, 'group'), 'root:x:0:\nnogroup:x:65534:\n')
    await fs.writeFile(
      path.join(etc, 'hosts'),
      '127.0.0.1 localhost\n::1 localhost\n'
    )
    const resolv = await fs.readFile('/etc/resolv.conf').catch(() => undefined)
    if (resolv !== undefined) {
      await fs.writeFile(path.join(etc, 'resolv.conf'), resolv)
    }

    await fs.mkdir(path.join(root, workdir), { recursive: true })
  }

  /** Runs one command in a fresh sandbox over the machine's disk. */
  run(machineId: string, spec: ExecSpec, sink: OutputSink): RunningCommand {
    const args = this.bwrapArgs(this.rootOf(machineId), spec)
    let child: ChildProcess
    try {
      child = spawn(this.bwrap, args, {
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
        env: {},
        detached: true
      })
    } catch (error) {
      // E2BIG lands here when an argv element or env value is over 128 KiB.
      sink('stderr', spawnFailure(error))
      const outcome = { exitCode: 126, timedOut: false, killed: false }
      return { done: Promise.resolve(outcome), kill: () => undefined }
    }

    let timedOut = false
    let killed = false
    const killGroup = (): void => {
      // bwrap leads its own process group; its death tears down the
      // sandbox's pid namespace and so every process the command started.
      if (child.pid === undefined || child.exitCode !== null) return
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        child.kill('SIGKILL')
      }
    }

    child.stdout?.on('data', (chunk: Buffer) => {
      sink('stdout', chunk)
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      sink('stderr', chunk)
    })
    feed(child.stdin, spec.stdin ?? '')
    feed(
      child.stdio[3] as Writable | null,
      typeof spec.command === 'string' ? spec.command : ''
    )

    const timeoutMs = (spec.timeoutSeconds ?? Infinity) * 1000
    const timer =
      timeoutMs > MAX_TIMER_MS
        ? undefined
        : setTimeout(() => {
            timedOut = true
            killGroup()
          }, timeoutMs)

    const done = new Promise<ExecOutcome>((resolve) => {
      let settled = false
      const settle = (exitCode: number): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (timedOut) exitCode = 124
        else if (killed) exitCode = 137
        resolve({ exitCode, timedOut, killed })
      }
      child.on('error', (error) => {
        sink('stderr', spawnFailure(error))
        settle(126)
      })
      child.on('close', (code, signal) => {
        settle(code ?? 128 + signalNumber(signal))
      })
    })

    return {
      done,
      kill: (): void => {
        killed = true
        killGroup()
      }
    }
  }

  /** Empties the machine's /tmp, as a stop does. */
  async wipeTmp(machineId: string): Promise<void> {
    const tmp = path.join(this.rootOf(machineId), 'tmp')
    await fs.rm(tmp, { recursive: true, force: true })
    await makeTmp(tmp)
  }

  async remove(machineId: string): Promise<void> {
    await fs.rm(this.rootOf(machineId), { recursive: true, force: true })
  }

  async dispose(): Promise<void> {
    await fs.rm(path.dirname(this.binDir), { recursive: true, force: true })
  }

  /**
   * Maps a path relative to the guest root to a host path, following
   * symbolic links the way the guest would see them, so a link in the
   * guest can never lead outside the machine's directory.
   */
  async resolveFile(machineId: string, relPath: string): Promise<string> {
    const root = this.rootOf(machineId)
    const pending = relPath.split('/')
    const resolved: string[] = []
    let links = 0
    for (
      let part = pending.shift();
      part !== undefined;
      part = pending.shift()
    ) {
      if (part === '' || part === '.') continue
      if (part === '..') {
        resolved.pop()
        continue
      }
      const hostPath = path.join(root, ...resolved, part)
      const stat = await fs.lstat(hostPath).catch(() => undefined)
      if (stat?.isSymbolicLink() !== true) {
        resolved.push(part)
        continue
      }
      links += 1
      if (links > 40) {
        throw new GuestPathError(`too many symbolic links in ${relPath}`)
      }
      const target = await fs.readlink(hostPath)
      if (target.startsWith('/')) resolved.length = 0
      pending.unshift(...target.split('/'))
    }

    const top = resolved[0]
    if (top === undefined) {
      throw new GuestPathError('the path names the guest root, not a file')
    }
    if (MOUNTED_DIRS.includes(top)) {
      throw new GuestPathError(
        `/${resolved.join('/')} is not on the machine's disk`
      )
    }
    return path.join(root, ...resolved)
  }

  private bwrapArgs(root: string, spec: ExecSpec): string[] {
    const args = ['--unshare-all']
    if (spec.network) args.push('--share-net')
    args.push(
      '--die-with-parent',
      '--new-session',
      '--bind',
      root,
      '/',
      '--ro-bind',
      this.binDir,
      '/bin',
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--hostname',
      spec.hostname,
      '--chdir',
      '/',
      '--clearenv'
    )
    const env = { PATH: GUEST_PATH, HOME: '/root', ...spec.env }
    for (const [name, value] of Object.entries(env)) {
      args.push('--setenv', name, value)
    }
    args.push('--', '/bin/sh', '-c')
    if (typeof spec.command === 'string') {
      args.push(SCRIPT_WRAPPER, 'sh', spec.cwd)
    } else {
      args.push(ARGV_WRAPPER, 'sh', spec.cwd, ...spec.command)
    }
    return args
  }

  private async probe(): Promise<void> {
    const id = '.probe'
    await this.remove(id)
    await this.create(id, '/workspace')
    const output: Buffer[] = []
    const running = this.run(
      id,
      {
        command: 'echo ok',
        cwd: '/',
        env: {},
        network: false,
        hostname: 'probe',
        timeoutSeconds: 20
      },
      (_stream, chunk) => output.push(chunk)
    )
    const outcome = await running.done
    await this.remove(id)
    const text = Buffer.concat(output).toString().trim()
    if (outcome.exitCode !== 0 || text !== 'ok') {
      throw new Error(
        `bubblewrap could not start a busybox guest (exit ` +
          `${String(outcome.exitCode)}): ${text}. The server needs bwrap with ` +
          `namespaces allowed and a static busybox: ${INSTALL_HINT}`
      )
    }
  }
}

/** The shared /bin: a copy of busybox and a link per applet. */
async function buildBin(busybox: string, binDir: string): Promise<void> {
  await fs.mkdir(binDir, { recursive: true })
  await fs.copyFile(busybox, path.join(binDir, 'busybox'))
  await fs.chmod(path.join(binDir, 'busybox'), 0o755)
  const { stdout } = await promisify(execFile)(busybox, ['--list'])
  for (const applet of stdout.split('\n')) {
    if (applet === '' || applet === 'busybox' || applet.includes('/')) continue
    await fs
      .symlink('busybox', path.join(binDir, applet))
      .catch(() => undefined)
  }
}

async function makeTmp(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true })
  await fs.chmod(dir, 0o1777)
}

async function findExecutable(
  name: string,
  fallbacks: string[]
): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(':').filter((dir) => dir !== '')
  const candidates = [...dirs.map((dir) => path.join(dir, name)), ...fallbacks]
  for (const candidate of candidates) {
    try {
      await fs.access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here; try the next one
    }
  }
  return undefined
}

function spawnFailure(error: unknown): Buffer {
  return Buffer.from(
    `sh: cannot run the command: ${describeSpawnError(error)}\n`
  )
}

function feed(stream: Writable | null, text: string): void {
  if (stream === null) return
  // The command may exit without reading its input.
  stream.on('error', () => undefined)
  stream.end(text)
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (signal === null) return 127
  const signals: Partial<Record<string, number>> = os.constants.signals
  return signals[signal] ?? 127
}

function describeSpawnError(error: unknown): string {
  if (errorCode(error) === 'E2BIG') {
    return 'Argument list too long (an argument or env value is over 128 KiB)'
  }
  return errorMessage(error)
}
