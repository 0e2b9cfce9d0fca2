// The machines of the local smolfleet server: their records and states, and
// the /v1 operations on them, each answered as a Reply.

import { isUtf8 } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import type { MachineRecord } from '../src/smolfleet/types.js'
import type { Faults } from './faults.js'
import {
  GuestPathError,
  type ExecOutcome,
  type GuestHost,
  type OutputSink,
  type RunningCommand
} from './guest.js'
import { ApiError, bytes, empty, json, sse, type Reply } from './http.js'
import { parseCreate, parseExec, type ExecBody } from './validate.js'
import { errorCode, errorMessage, MAX_TIMER_MS } from './errors.js'

export interface FleetOptions {
  maxMachines?: number
  startDelayMs: number
}

type State = 'stopped' | 'starting' | 'running' | 'error'

interface Machine {
  record: MachineRecord & { state: State; workdir: string }
  env: Record<string, string>
  blockNetwork: boolean
  running: Set<RunningCommand>
  startTimer?: NodeJS.Timeout
  ttlTimer?: NodeJS.Timeout
  runningSince?: number
  runningMs: number
  execCalls: number
}

const KILLED_MESSAGE = 'machine stopped while the command was running'

export class Fleet {
  private readonly machines = new Map<string, Machine>()
  private closed = false

  constructor(
    private readonly guests: GuestHost,
    private readonly faults: Faults,
    private readonly options: FleetOptions
  ) {}

  snapshot(): MachineRecord[] {
    return [...this.machines.values()].map((machine) => copy(machine.record))
  }

  async create(body: unknown): Promise<Reply> {
    if (this.closed) throw new ApiError(503, 'server is shutting down')
    const spec = parseCreate(body)
    const max = this.options.maxMachines
    if (max !== undefined && this.machines.size >= max) {
      throw new ApiError(
        422,
        `machine quota exceeded: ${String(this.machines.size)} of ` +
          `${String(max)} machines ` +
          'in use'
      )
    }
    const taken = [...this.machines.values()].some(
      (machine) => machine.record.name === spec.name
    )
    if (spec.name !== undefined && taken) {
      throw new ApiError(409, `machine name already exists: ${spec.name}`)
    }

    const id = `mach-${randomBytes(8).toString('hex')}`
    const now = new Date().toISOString()
    const network: { mode: string; cidrs?: string[] } = {
      mode: spec.network.mode
    }
    if (spec.network.cidrs !== undefined) network.cidrs = spec.network.cidrs
    const machine: Machine = {
      record: {
        id,
        name: spec.name ?? id,
        state: 'stopped',
        source: spec.source,
        resources: spec.resources,
        network,
        workdir: spec.workdir,
        createdAt: now,
        updatedAt: now
      },
      env: spec.env,
      // allowCidrs cannot be filtered here; it gets the host network.
      blockNetwork: spec.network.mode === 'blocked',
      running: new Set(),
      runningMs: 0,
      execCalls: 0
    }

    // The name is taken before the disk is made, so a concurrent create
    // with the same name gets its 409.
    this.machines.set(id, machine)
    try {
      await this.guests.create(id, spec.workdir)
      // close() may have run while the disk was being made.
      if (this.isClosed()) throw new ApiError(503, 'server is shutting down')
    } catch (error) {
      this.machines.delete(id)
      await this.guests.remove(id)
      throw error
    }

    const ttlMs = (spec.ttlSeconds ?? Infinity) * 1000
    if (ttlMs <= MAX_TIMER_MS) {
      machine.ttlTimer = setTimeout(() => {
        this.remove(id, false).catch(() => undefined)
      }, ttlMs)
      machine.ttlTimer.unref()
    }
    return json(201, machine.record)
  }

  list(): Reply {
    return json(200, this.snapshot())
  }

  get(id: string): Reply {
    return json(200, this.find(id).record)
  }

  start(id: string): Reply {
    const machine = this.find(id)
    const state = machine.record.state
    if (state === 'running' || state === 'starting') return json(200, {})

    const action = this.faults.takeForStart()
    this.setState(machine, 'starting')
    if (action.kind === 'stuck') return json(200, {})
    const delay = action.kind === 'slow' ? action.ms : this.options.startDelayMs
    const next = action.kind === 'error' ? 'error' : 'running'
    machine.startTimer = setTimeout(
      () => {
        machine.startTimer = undefined
        this.setState(machine, next)
      },
      Math.min(delay, MAX_TIMER_MS)
    )
    machine.startTimer.unref()
    return json(200, {})
  }

  async stop(id: string): Promise<Reply> {
    const machine = this.find(id)
    clearTimeout(machine.startTimer)
    this.setState(machine, 'stopped')
    await killAll(machine)
    await this.guests.wipeTmp(id)
    return json(200, {})
  }

  async remove(id: string, includeUsage: boolean): Promise<Reply> {
    const machine = this.find(id)
    await this.destroy(machine)
    if (!includeUsage) return empty(204)
    return json(200, {
      id,
      name: machine.record.name,
      usage: {
        runningSeconds: Math.round(machine.runningMs / 10) / 100,
        execCalls: machine.execCalls,
        amountUsd: 0
      }
    })
  }

  async exec(id: string, body: unknown): Promise<Reply> {
    const machine = this.find(id)
    const request = parseExec(body)
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    const outcome = await this.launch(machine, request, (stream, chunk) =>
      (stream === 'stdout' ? stdout : stderr).push(chunk)
    )
    if (outcome.killed) throw new ApiError(409, KILLED_MESSAGE)

    const answer: Record<string, unknown> = { exitCode: outcome.exitCode }
    for (const [name, chunks] of [
      ['stdout', stdout],
      ['stderr', stderr]
    ] as const) {
      const data = Buffer.concat(chunks)
      answer[name] = data.toString('utf8')
      if (!isUtf8(data)) answer[`${name}B64`] = data.toString('base64')
    }
    return json(200, answer)
  }

  execStream(id: string, body: unknown): Reply {
    const machine = this.find(id)
    const request = parseExec(body)
    assertRunning(machine)
    return sse(async (send) => {
      const decoders = {
        stdout: new StringDecoder('utf8'),
        stderr: new StringDecoder('utf8')
      }
      let outcome: ExecOutcome
      try {
        outcome = await this.launch(machine, request, (stream, chunk) => {
          const text = decoders[stream].write(chunk)
          if (text !== '') send(stream, text)
        })
      } catch (error) {
        send('error', errorMessage(error))
        return
      }
      for (const stream of ['stdout', 'stderr'] as const) {
        const rest = decoders[stream].end()
        if (rest !== '') send(stream, rest)
      }
      if (outcome.killed) send('error', KILLED_MESSAGE)
      else send('exit', JSON.stringify({ exitCode: outcome.exitCode }))
    })
  }

  async putFile(id: string, relPath: string, data: Buffer): Promise<Reply> {
    const machine = this.find(id)
    assertRunning(machine)
    const hostPath = await this.resolve(id, relPath)
    try {
      await fs.mkdir(path.dirname(hostPath), { recursive: true })
      await fs.writeFile(hostPath, data)
    } catch (error) {
      throw new ApiError(
        400,
        `cannot write /${relPath}: ${errorCode(error) ?? errorMessage(error)}`
      )
    }
    return empty(204)
  }

  async getFile(id: string, relPath: string): Promise<Reply> {
    const machine = this.find(id)
    assertRunning(machine)
    const hostPath = await this.resolve(id, relPath)
    try {
      return bytes(200, await fs.readFile(hostPath))
    } catch (error) {
      const code = errorCode(error)
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
        throw new ApiError(404, `file not found: /${relPath}`)
      }
      throw error
    }
  }

  /** Kills every command and removes every machine's disk. */
  async dispose(): Promise<void> {
    this.closed = true
    const machines = [...this.machines.values()]
    await Promise.all(machines.map(async (machine) => this.destroy(machine)))
  }

  private async destroy(machine: Machine): Promise<void> {
    this.machines.delete(machine.record.id)
    clearTimeout(machine.startTimer)
    clearTimeout(machine.ttlTimer)
    this.setState(machine, 'stopped')
    await killAll(machine)
    await this.guests.remove(machine.record.id)
  }

  private async launch(
    machine: Machine,
    request: ExecBody,
    sink: OutputSink
  ): Promise<ExecOutcome> {
    assertRunning(machine)
    const record = machine.record
    const running = this.guests.run(
      record.id,
      {
        command: request.command,
        cwd: request.cwd ?? record.workdir,
        env: { ...machine.env, ...request.env },
        stdin: request.stdin,
        timeoutSeconds: request.timeoutSeconds,
        network: !machine.blockNetwork,
        hostname: record.name.slice(0, 63)
      },
      sink
    )
    machine.execCalls += 1
    machine.running.add(running)
    try {
      return await running.done
    } finally {
      machine.running.delete(running)
    }
  }

  private async resolve(id: string, relPath: string): Promise<string> {
    try {
      return await this.guests.resolveFile(id, relPath)
    } catch (error) {
      if (error instanceof GuestPathError) {
        throw new ApiError(400, error.message)
      }
      throw error
    }
  }

  private find(id: string): Machine {
    const machine = this.machines.get(id)
    if (machine === undefined || this.closed) {
      throw new ApiError(404, 'machine not found')
    }
    return machine
  }

  private isClosed(): boolean {
    return this.closed
  }

  private setState(machine: Machine, state: State): void {
    const now = Date.now()
    if (machine.runningSince !== undefined) {
      machine.runningMs += now - machine.runningSince
      machine.runningSince = undefined
    }
    if (state === 'running') machine.runningSince = now
    machine.record.state = state
    machine.record.updatedAt = new Date(now).toISOString()
  }
}

function assertRunning(machine: Machine): void {
  const state = machine.record.state
  if (state !== 'running') {
    throw new ApiError(409, `machine is not running (state: ${state})`)
  }
}

async function killAll(machine: Machine): Promise<void> {
  const running = [...machine.running]
  for (const command of running) command.kill()
  await Promise.all(running.map(async (command) => command.done))
}

function copy(record: MachineRecord): MachineRecord {
  return JSON.parse(JSON.stringify(record)) as MachineRecord
}
