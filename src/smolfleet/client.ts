import { Agent, errors as undiciErrors, request } from 'undici'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { redact } from '../security/redact.js'
import { checkBaseUrl, sameOrigin } from './base-url.js'
import { ApiError, TransportError } from './errors.js'
import {
  DEFAULT_RETRY,
  TRANSIENT_STATUSES,
  backoffMs,
  retryAfterMs
} from './retry.js'
import type { RetryPolicy } from './retry.js'
import type {
  CreateMachineRequest,
  ExecRequest,
  ExecResult,
  MachineRecord
} from './types.js'

/** Clock, sleep and logging, injected so tests need no real time. */
export interface ClientRuntime {
  now(): number
  sleep(ms: number, signal?: AbortSignal): Promise<void>
  random(): number
  log(message: string): void
}

export interface ClientOptions {
  baseUrl: string
  apiKey: string
  allowCustomBaseUrl?: boolean
  /** Aborts every request in flight, e.g. when the step is cancelled. */
  signal?: AbortSignal
  retry?: RetryPolicy
  /** Bound on each control call (create, get, list, start, delete). */
  controlTimeoutMs?: number
  runtime?: Partial<ClientRuntime>
}

export interface StreamHandlers {
  stdout(text: string): void
  stderr(text: string): void
}

interface CallOptions {
  body?: unknown
  /** True when sending the request twice cannot do harm. */
  idempotent: boolean
  timeoutMs: number
}

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Dispatcher.ResponseData['body']
}

const MAX_REDIRECTS = 10
const ERROR_BODY_LIMIT = 8192
/** Headroom on top of a command's own timeout, as the official SDK does. */
const EXEC_HEADROOM_MS = 30_000

const machineSchema = z
  .object({
    id: z.string().min(1),
    name: z.string().default(''),
    state: z.string().default(''),
    source: z
      .object({ type: z.string().optional(), reference: z.string().optional() })
      .optional(),
    resources: z
      .object({
        cpus: z.number().optional(),
        memoryMb: z.number().optional(),
        diskGb: z.number().optional()
      })
      .optional(),
    network: z
      .object({
        mode: z.string().optional(),
        cidrs: z.array(z.string()).optional()
      })
      .optional(),
    workdir: z.string().optional(),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional()
  })
  .loose()

const execSchema = z
  .object({
    exitCode: z.number().int().optional(),
    exit_code: z.number().int().optional(),
    stdout: z.string().optional(),
    stderr: z.string().optional(),
    output: z.string().optional(),
    error: z.string().optional()
  })
  .loose()

const defaultRuntime: ClientRuntime = {
  now: () => Date.now(),
  sleep: async (ms, signal) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, ms)
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer)
          reject(signal.reason as Error)
        },
        { once: true }
      )
    }),
  random: Math.random,
  log: () => undefined
}

/** The smolfleet REST client: redirects, retries, timeouts, redaction. */
export class SmolfleetClient {
  readonly baseUrl: string
  private readonly apiKey: string
  private readonly signal: AbortSignal | undefined
  private readonly retry: RetryPolicy
  private readonly controlTimeoutMs: number
  private readonly rt: ClientRuntime
  // Keep-alive is off so that no idle socket can hold the process open.
  private readonly agent = new Agent({
    keepAliveTimeout: 1,
    keepAliveMaxTimeout: 1,
    headersTimeout: 0,
    bodyTimeout: 0
  })

  constructor(options: ClientOptions) {
    this.baseUrl = checkBaseUrl(
      options.baseUrl,
      options.allowCustomBaseUrl ?? false
    )
    this.apiKey = options.apiKey
    this.signal = options.signal
    this.retry = options.retry ?? DEFAULT_RETRY
    this.controlTimeoutMs = options.controlTimeoutMs ?? 30_000
    this.rt = { ...defaultRuntime, ...options.runtime }
  }

  async createMachine(body: CreateMachineRequest): Promise<MachineRecord> {
    // Not idempotent: a lost answer is resolved by the caller, which looks
    // the machine up by its pre-chosen name instead of sending it again.
    const text = await this.call('POST', '/v1/machines', {
      body,
      idempotent: false,
      timeoutMs: this.controlTimeoutMs
    })
    return parseMachine(text, 'create')
  }

  async getMachine(id: string): Promise<MachineRecord> {
    const text = await this.call('GET', `/v1/machines/${enc(id)}`, {
      idempotent: true,
      timeoutMs: this.controlTimeoutMs
    })
    return parseMachine(text, 'get')
  }

  async listMachines(): Promise<MachineRecord[]> {
    const text = await this.call('GET', '/v1/machines', {
      idempotent: true,
      timeoutMs: this.controlTimeoutMs
    })
    const data = parseJson(text, 'list')
    const list = Array.isArray(data)
      ? data
      : (data as { machines?: unknown } | null)?.machines
    if (!Array.isArray(list)) {
      throw new Error(
        'The smolfleet API answered the machine list with something that is not a list.'
      )
    }
    return list.map((item) => checkMachine(item, 'list'))
  }

  async startMachine(id: string): Promise<void> {
    // Starting a started machine is harmless, so start may be re-sent.
    await this.call('POST', `/v1/machines/${enc(id)}/start`, {
      body: {},
      idempotent: true,
      timeoutMs: this.controlTimeoutMs
    })
  }

  /** Deletes a machine; "already gone" (404) counts as done. */
  async deleteMachine(id: string): Promise<'deleted' | 'gone'> {
    try {
      await this.call('DELETE', `/v1/machines/${enc(id)}`, {
        idempotent: true,
        timeoutMs: this.controlTimeoutMs
      })
      return 'deleted'
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return 'gone'
      throw error
    }
  }

  async exec(
    id: string,
    req: ExecRequest,
    options: { idempotent: boolean }
  ): Promise<ExecResult> {
    const text = await this.call('POST', `/v1/machines/${enc(id)}/exec`, {
      body: req,
      idempotent: options.idempotent,
      timeoutMs: execTimeoutMs(req)
    })
    return parseExec(text)
  }

  /**
   * Runs a command through /exec/stream and hands output over as it comes.
   * Never re-sent: the caller guards the command against a second start.
   * Returns undefined when the API has no stream route (then use exec).
   */
  async execStream(
    id: string,
    req: ExecRequest,
    handlers: StreamHandlers
  ): Promise<number | undefined> {
    let answer: Answer
    try {
      answer = await this.send('POST', `/v1/machines/${enc(id)}/exec/stream`, {
        body: req,
        idempotent: false,
        timeoutMs: execTimeoutMs(req)
      })
    } catch (error) {
      if (error instanceof ApiError && [404, 405, 501].includes(error.status)) {
        return undefined
      }
      throw error
    }
    return readEvents(answer.body, handlers)
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined)
  }

  private async call(
    method: string,
    path: string,
    options: CallOptions
  ): Promise<string> {
    const answer = await this.send(method, path, options)
    return answer.body.text()
  }

  /** Sends one logical request, with redirects and the retry policy. */
  private async send(
    method: string,
    path: string,
    options: CallOptions
  ): Promise<Answer> {
    const started = this.rt.now()
    for (let attempt = 1; ; attempt++) {
      let delay: number | undefined
      let reason: string
      try {
        const answer = await this.follow(method, path, options)
        if (answer.status >= 200 && answer.status < 300) return answer
        const error = await apiError(method, path, answer)
        // 429 means the request was refused before it was acted on, so even
        // a non-idempotent call may be sent again. 5xx may have acted.
        const retryable =
          answer.status === 429 ||
          (options.idempotent && TRANSIENT_STATUSES.has(answer.status))
        if (!retryable) throw error
        reason = `answered ${answer.status}`
        delay = retryAfterMs(header(answer, 'retry-after'), this.rt.now())
        if (attempt >= this.retry.attempts) throw error
      } catch (error) {
        if (error instanceof ApiError) throw error
        if (this.signal?.aborted) throw cancelled()
        const transport = toTransportError(error, method, path)
        if (!options.idempotent && transport.sent) throw transport
        if (attempt >= this.retry.attempts) throw transport
        reason = transport.message.replace(`smolfleet ${method} ${path} `, '')
      }
      const wait = Math.min(
        delay ?? backoffMs(this.retry, attempt, () => this.rt.random()),
        30_000
      )
      if (this.rt.now() - started + wait > this.retry.budgetMs) {
        throw new Error(
          `smolfleet ${method} ${path} kept failing (${reason}); gave up after ${attempt} attempts.`
        )
      }
      this.rt.log(
        `smolfleet ${method} ${path} ${reason}; retrying in ${(wait / 1000).toFixed(1)}s (attempt ${attempt + 1} of ${this.retry.attempts})`
      )
      await this.rt.sleep(wait, this.signal)
    }
  }

  /** One attempt, following only same-origin redirects. */
  private async follow(
    method: string,
    path: string,
    options: CallOptions
  ): Promise<Answer> {
    let url = this.baseUrl + path
    let verb = method
    let body =
      options.body === undefined ? undefined : JSON.stringify(options.body)
    for (let hop = 0; ; hop++) {
      const signals = [AbortSignal.timeout(options.timeoutMs)]
      if (this.signal) signals.push(this.signal)
      const headers: Record<string, string> = {
        authorization: `Bearer ${this.apiKey}`,
        accept: 'application/json'
      }
      if (body !== undefined) headers['content-type'] = 'application/json'
      const res = await request(url, {
        method: verb,
        headers,
        body,
        signal: AbortSignal.any(signals),
        dispatcher: this.agent
      })
      if (![301, 302, 303, 307, 308].includes(res.statusCode)) {
        return { status: res.statusCode, headers: res.headers, body: res.body }
      }
      await res.body.dump()
      const location = header(
        { status: res.statusCode, headers: res.headers, body: res.body },
        'location'
      )
      if (!location) throw new Error(`smolfleet redirect without a location`)
      const target = new URL(location, url).toString()
      if (!sameOrigin(this.baseUrl, target)) {
        throw new ApiError(
          res.statusCode,
          redact(
            `smolfleet ${method} ${path} was redirected to ${new URL(target).origin}, another origin; the API key is never sent there.`
          )
        )
      }
      if (hop >= MAX_REDIRECTS) {
        throw new ApiError(
          res.statusCode,
          'smolfleet stopped after 10 redirects.'
        )
      }
      if (res.statusCode <= 303 && verb !== 'GET' && verb !== 'HEAD') {
        verb = 'GET'
        body = undefined
      }
      url = target
    }
  }
}

function enc(id: string): string {
  return encodeURIComponent(id)
}

function execTimeoutMs(req: ExecRequest): number {
  const seconds = req.timeoutSeconds ?? 3600
  return seconds * 1000 + EXEC_HEADROOM_MS
}

function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function cancelled(): Error {
  return new Error('The request was cancelled.')
}

async function apiError(
  method: string,
  path: string,
  answer: Answer
): Promise<ApiError> {
  let text = ''
  for await (const chunk of answer.body) {
    text += (chunk as Buffer).toString('utf8')
    if (text.length >= ERROR_BODY_LIMIT) break
  }
  answer.body.destroy()
  const body = redact(text.slice(0, ERROR_BODY_LIMIT).trim())
  const detail = body ? `: ${body}` : ''
  return new ApiError(
    answer.status,
    `smolfleet ${method} ${path} answered ${answer.status}${detail}`
  )
}

// Connection refused and DNS failures happen before anything is sent; every
// other failure may have reached the server.
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'])

function toTransportError(
  error: unknown,
  method: string,
  path: string
): TransportError {
  const err = error as {
    code?: string
    cause?: { code?: string }
    name?: string
    message?: string
  }
  const code = err.code ?? err.cause?.code ?? ''
  let what = err.message ?? String(error)
  if (
    err.name === 'TimeoutError' ||
    error instanceof undiciErrors.HeadersTimeoutError
  ) {
    what = 'timed out'
  } else if (code) {
    what = `${code} ${what}`
  }
  return new TransportError(
    redact(`smolfleet ${method} ${path} failed: ${what}`),
    !NOT_SENT.has(code)
  )
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new Error(
      `The smolfleet API answered the ${what} call with something that is not JSON: ${redact(text.slice(0, 200))}`
    )
  }
}

function checkMachine(data: unknown, what: string): MachineRecord {
  const parsed = machineSchema.safeParse(data)
  if (!parsed.success) {
    throw new Error(
      `The smolfleet API answered the ${what} call without a usable machine record (a machine needs a non-empty id).`
    )
  }
  return parsed.data
}

function parseMachine(text: string, what: string): MachineRecord {
  return checkMachine(parseJson(text, what), what)
}

function parseExec(text: string): ExecResult {
  const parsed = execSchema.safeParse(parseJson(text, 'exec'))
  if (!parsed.success) {
    throw new Error(
      'The smolfleet API answered an exec call with an unusable record.'
    )
  }
  const r = parsed.data
  const exitCode = r.exitCode ?? r.exit_code
  if (exitCode === undefined) {
    throw new Error(
      'The smolfleet API answered an exec call without an exit code, so the result is unknown.'
    )
  }
  return {
    exitCode,
    stdout: r.stdout ?? r.output ?? '',
    stderr: r.stderr ?? r.error ?? ''
  }
}

/** Reads a text/event-stream answer until its exit event. */
async function readEvents(
  body: Answer['body'],
  handlers: StreamHandlers
): Promise<number> {
  let buffer = ''
  let event = 'message'
  let data: string[] = []
  for await (const chunk of body) {
    buffer += (chunk as Buffer).toString('utf8')
    let newline: number
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '')
      buffer = buffer.slice(newline + 1)
      if (line === '') {
        const text = data.join('\n')
        if (event === 'stdout') handlers.stdout(text)
        else if (event === 'stderr') handlers.stderr(text)
        else if (event === 'exit') return exitFromEvent(text)
        else if (event === 'error') {
          throw new Error(`The sandbox reported an error: ${redact(text)}`)
        }
        event = 'message'
        data = []
      } else if (line.startsWith('event:')) {
        event = line.slice(6).trim()
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''))
      }
    }
  }
  throw new TransportError(
    'The exec stream ended before the command reported its exit code.',
    true
  )
}

function exitFromEvent(text: string): number {
  const parsed = execSchema.safeParse(parseJson(text, 'exec stream'))
  const code = parsed.success
    ? (parsed.data.exitCode ?? parsed.data.exit_code)
    : undefined
  if (code === undefined) {
    throw new Error('The exec stream ended without an exit code.')
  }
  return code
}
