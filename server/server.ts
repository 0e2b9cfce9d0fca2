// The local smolfleet server: a test double of the hosted /v1 API whose
// machines are bubblewrap sandboxes on this host (see guest.ts), with fault
// injection and a request log for tests.

import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { MachineRecord } from '../src/smolfleet/types.js'
import { Faults, parseWireFaults, type FaultController } from './faults.js'
import { GuestHost } from './guest.js'
import {
  ApiError,
  empty,
  faultReply,
  json,
  parseJsonBody,
  readBody,
  sendReply,
  text,
  type Reply
} from './http.js'
import { Fleet } from './machines.js'
import { commandForLog } from './validate.js'
import { errorMessage } from './errors.js'

export interface ServerOptions {
  /** Default 0 (a random port). The server always listens on 127.0.0.1. */
  port?: number
  /** Accepted bearer keys; default ['smk_local_test_key']. */
  apiKeys?: string[]
  /** Keys that authenticate but lack the scope for any call (403). */
  scopelessKeys?: string[]
  /** A create beyond this many live machines is answered 422. */
  maxMachines?: number
  /** How long a started machine stays 'starting'; default 150 ms. */
  startDelayMs?: number
  /** Where guest roots live; default a fresh temporary directory. */
  dataDir?: string
}

export interface RecordedRequest {
  method: string
  /** The path without the query. */
  path: string
  /** The status the client received; 0 when the socket was dropped. */
  status: number
  bodyBytes: number
  /** For exec calls, the command truncated to 200 characters. */
  command?: string
  at: number
}

export interface SmolfleetServer {
  url: string
  faults: FaultController
  requests(): RecordedRequest[]
  clearRequests(): void
  machines(): MachineRecord[]
  /** The host path of a file inside a machine's guest. */
  guestPath(machineId: string, guestAbsPath: string): string
  /** Stops, kills running guest processes and deletes guest dirs. */
  close(): Promise<void>
}

export const DEFAULT_API_KEY = 'smk_local_test_key'
const RATE_LIMIT_BUDGET = 10000

export async function startServer(
  options: ServerOptions = {}
): Promise<SmolfleetServer> {
  const ownDataDir = options.dataDir === undefined
  const dataDir =
    options.dataDir === undefined
      ? await fs.mkdtemp(path.join(os.tmpdir(), 'smolfleet-'))
      : path.resolve(options.dataDir)
  await fs.mkdir(dataDir, { recursive: true })

  let guests: GuestHost
  try {
    guests = await GuestHost.open(dataDir)
  } catch (error) {
    if (ownDataDir) await fs.rm(dataDir, { recursive: true, force: true })
    throw error
  }

  const faults = new Faults()
  const fleet = new Fleet(guests, faults, {
    maxMachines: options.maxMachines,
    startDelayMs: options.startDelayMs ?? 150
  })
  const api = new Api(fleet, faults, {
    apiKeys: new Set(options.apiKeys ?? [DEFAULT_API_KEY]),
    scopelessKeys: new Set(options.scopelessKeys ?? [])
  })

  const server = createServer((req, res) => {
    api.handle(req, res).catch((error: unknown) => {
      answerCrash(res, error)
    })
  })
  try {
    await listen(server, options.port ?? 0)
  } catch (error) {
    await guests.dispose()
    if (ownDataDir) await fs.rm(dataDir, { recursive: true, force: true })
    throw error
  }
  const { port } = server.address() as AddressInfo

  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve()
      })
    })
    server.closeAllConnections()
    await closed
    await fleet.dispose()
    await guests.dispose()
    if (ownDataDir) await fs.rm(dataDir, { recursive: true, force: true })
  }

  return {
    url: `http://127.0.0.1:${String(port)}`,
    faults,
    requests: (): RecordedRequest[] => api.log.map((entry) => ({ ...entry })),
    clearRequests: (): void => {
      api.log.length = 0
    },
    machines: (): MachineRecord[] => fleet.snapshot(),
    guestPath: (machineId: string, guestAbsPath: string): string => {
      const root = guests.rootOf(machineId)
      const hostPath = path.join(root, guestAbsPath)
      const inside = hostPath === root || hostPath.startsWith(root + path.sep)
      if (path.dirname(root) !== dataDir || !inside) {
        throw new Error(`not a guest path: ${machineId} ${guestAbsPath}`)
      }
      return hostPath
    },
    close: async (): Promise<void> => {
      closing ??= close()
      return closing
    }
  }
}

interface Keys {
  apiKeys: Set<string>
  scopelessKeys: Set<string>
}

class Api {
  readonly log: RecordedRequest[] = []
  private remaining = RATE_LIMIT_BUDGET

  constructor(
    private readonly fleet: Fleet,
    private readonly faults: Faults,
    private readonly keys: Keys
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const raw = req.url ?? '/'
    const queryAt = raw.indexOf('?')
    const pathname = queryAt < 0 ? raw : raw.slice(0, queryAt)
    const query = new URLSearchParams(queryAt < 0 ? '' : raw.slice(queryAt + 1))
    if (pathname === '/_control' || pathname.startsWith('/_control/')) {
      await this.control(req, res, method, pathname)
      return
    }

    const entry: RecordedRequest = {
      method,
      path: pathname,
      status: 0,
      bodyBytes: 0,
      at: Date.now()
    }
    this.log.push(entry)
    this.remaining = Math.max(0, this.remaining - 1)
    const headers = { 'x-ratelimit-remaining': String(this.remaining) }

    // Faults come first, as they would from a gateway in front of the API.
    const action = await this.faults.takeForRequest(method, pathname)
    if (action.kind === 'dropBefore') {
      req.socket.destroy()
      return
    }
    const limit = this.faults.maxBodyBytes
    const { body, size } = await readBody(
      req,
      action.kind === 'status' ? 0 : limit
    )
    entry.bodyBytes = size
    if (action.kind === 'status') {
      entry.status = action.status
      await sendReply(
        res,
        faultReply(action.status, action.body, action.headers),
        headers
      )
      return
    }

    let reply: Reply
    if (limit !== undefined && size > limit) {
      reply = text(413, 'request body too large')
    } else {
      reply = await this.answer(req, method, pathname, query, body, entry)
    }

    if (action.kind === 'dropAfter') {
      // The request is carried out in full and only the answer is lost.
      if (reply.stream !== undefined) await reply.stream(() => undefined)
      req.socket.destroy()
      return
    }
    entry.status = reply.status
    await sendReply(res, reply, headers)
  }

  private async answer(
    req: IncomingMessage,
    method: string,
    pathname: string,
    query: URLSearchParams,
    body: Buffer,
    entry: RecordedRequest
  ): Promise<Reply> {
    const denied = this.authenticate(req.headers.authorization)
    if (denied !== undefined) return denied
    try {
      return await this.route(method, pathname, query, body, entry)
    } catch (error) {
      if (error instanceof ApiError) return text(error.status, error.message)
      const message = errorMessage(error)
      return text(500, `internal error: ${message}`)
    }
  }

  private authenticate(header: string | undefined): Reply | undefined {
    const key = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1]
    if (key === undefined) return empty(401)
    if (this.keys.scopelessKeys.has(key)) {
      return text(403, 'key lacks scope machines:write')
    }
    if (!this.keys.apiKeys.has(key)) return json(401, { code: 'unknown_key' })
    return undefined
  }

  private async route(
    method: string,
    pathname: string,
    query: URLSearchParams,
    body: Buffer,
    entry: RecordedRequest
  ): Promise<Reply> {
    const fleet = this.fleet
    if (pathname === '/v1/machines') {
      if (method === 'GET') return fleet.list()
      if (method === 'POST') return fleet.create(parseJsonBody(body))
    }

    const match = /^\/v1\/machines\/([^/]+)(\/.*)?$/.exec(pathname)
    const id = match?.[1]
    const rest = match?.[2] ?? ''
    if (id === undefined) return text(501, 'not implemented')
    const machineId = decode(id)

    if (rest === '') {
      if (method === 'GET') return fleet.get(machineId)
      if (method === 'DELETE') {
        const usage = query.get('includeUsage') === 'true'
        return fleet.remove(machineId, usage)
      }
    }
    if (method === 'POST' && (rest === '/start' || rest === '/stop')) {
      parseJsonBody(body)
      if (rest === '/start') return fleet.start(machineId)
      return fleet.stop(machineId)
    }
    if (method === 'POST' && (rest === '/exec' || rest === '/exec/stream')) {
      const request = parseJsonBody(body)
      entry.command = commandForLog(request)
      if (rest === '/exec') return fleet.exec(machineId, request)
      return fleet.execStream(machineId, request)
    }
    if (rest.startsWith('/files/') && (method === 'PUT' || method === 'GET')) {
      const filePath = filePathOf(rest.slice('/files/'.length))
      if (method === 'PUT') return fleet.putFile(machineId, filePath, body)
      return fleet.getFile(machineId, filePath)
    }
    return text(501, 'not implemented')
  }

  /** Test plumbing; not logged, not authenticated, loopback only. */
  private async control(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    pathname: string
  ): Promise<void> {
    const { body } = await readBody(req, undefined)
    let reply: Reply
    try {
      reply = this.controlReply(method, pathname, body)
    } catch (error) {
      const message = errorMessage(error)
      const status = error instanceof ApiError ? error.status : 400
      reply = text(status, message)
    }
    await sendReply(res, reply, {})
  }

  private controlReply(method: string, pathname: string, body: Buffer): Reply {
    const route = `${method} ${pathname}`
    switch (route) {
      case 'POST /_control/faults':
        for (const fault of parseWireFaults(parseJsonBody(body))) {
          this.faults.add(fault)
        }
        return empty(204)
      case 'DELETE /_control/faults':
        this.faults.clear()
        return empty(204)
      case 'PUT /_control/max-body-bytes': {
        const bytes = (parseJsonBody(body) as { bytes?: unknown } | null)?.bytes
        if (bytes === null) {
          this.faults.maxBodyBytes = undefined
        } else if (Number.isInteger(bytes) && (bytes as number) >= 0) {
          this.faults.maxBodyBytes = bytes as number
        } else {
          throw new ApiError(
            400,
            'bytes must be a non-negative integer or null'
          )
        }
        return empty(204)
      }
      case 'GET /_control/requests':
        return json(200, this.log)
      case 'DELETE /_control/requests':
        this.log.length = 0
        return empty(204)
      case 'GET /_control/machines':
        return this.fleet.list()
      default:
        return text(404, `no control route ${route}`)
    }
  }
}

/** The guest path of a files call: relative, decoded, without "..". */
function filePathOf(raw: string): string {
  if (raw === '' || raw.startsWith('/')) {
    throw new ApiError(
      400,
      'file path must be relative to the guest root, without a leading slash'
    )
  }
  const parts = raw.split('/').map(decode).join('/').split('/')
  if (parts.some((part) => part === '..' || part.includes('\0'))) {
    throw new ApiError(400, `file path must not contain "..": ${raw}`)
  }
  return parts.join('/')
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new ApiError(400, `bad percent-encoding in path: ${part}`)
  }
}

function answerCrash(res: ServerResponse, error: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const message = errorMessage(error)
  res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
  res.end(`internal error: ${message}`)
}

async function listen(server: Server, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}
