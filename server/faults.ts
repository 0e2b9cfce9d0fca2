// Fault injection for the local smolfleet server: tests queue faults here and
// the server consumes them as matching requests or machine starts arrive.

import { MAX_TIMER_MS } from './errors.js'

export interface FaultMatch {
  method?: string
  /** Regex source tested against the request path, e.g. '/exec$'. */
  path?: string
}

export type Fault =
  | {
      kind: 'status'
      status: number
      body?: string
      headers?: Record<string, string>
      match?: FaultMatch
      times?: number
    }
  | {
      kind: 'drop'
      when: 'before' | 'after'
      match?: FaultMatch
      times?: number
    }
  | { kind: 'delay'; ms: number; match?: FaultMatch; times?: number }
  | { kind: 'errorState'; times?: number }
  | { kind: 'slowStart'; ms: number; times?: number }
  | { kind: 'stuckStart'; times?: number }

export interface FaultController {
  add(fault: Fault): void
  clear(): void
  /** When set, any request with a larger body is answered 413. */
  maxBodyBytes: number | undefined
}

type RequestFault = Extract<Fault, { kind: 'status' | 'drop' | 'delay' }>
type StartFault = Extract<
  Fault,
  { kind: 'errorState' | 'slowStart' | 'stuckStart' }
>

/** What the server does with a request after the matching delays. */
export type RequestAction =
  | { kind: 'handle' }
  | { kind: 'dropBefore' }
  | { kind: 'dropAfter' }
  | Extract<Fault, { kind: 'status' }>

/** How the next started machine behaves instead of the normal start. */
export type StartAction =
  | { kind: 'normal' }
  | { kind: 'error' }
  | { kind: 'slow'; ms: number }
  | { kind: 'stuck' }

interface Queued<F> {
  fault: F
  left: number
  pattern?: RegExp
}

export class Faults implements FaultController {
  maxBodyBytes: number | undefined = undefined
  private requestFaults: Queued<RequestFault>[] = []
  private startFaults: Queued<StartFault>[] = []

  add(fault: Fault): void {
    const left = fault.times === -1 ? Infinity : (fault.times ?? 1)
    if (!(left > 0)) {
      throw new Error(`fault times must be positive, got ${String(left)}`)
    }
    switch (fault.kind) {
      case 'status':
      case 'drop':
      case 'delay': {
        const path = fault.match?.path
        const pattern = path === undefined ? undefined : new RegExp(path)
        this.requestFaults.push({ fault, left, pattern })
        return
      }
      default:
        this.startFaults.push({ fault, left })
    }
  }

  clear(): void {
    this.requestFaults = []
    this.startFaults = []
  }

  /**
   * Consumes the faults that apply to one request. Matching delays are all
   * waited out in order; the first matching status or drop fault decides
   * what happens next.
   */
  async takeForRequest(method: string, path: string): Promise<RequestAction> {
    for (const queued of [...this.requestFaults]) {
      if (queued.left <= 0 || !matches(queued, method, path)) continue
      this.consume(this.requestFaults, queued)
      const fault = queued.fault
      if (fault.kind === 'delay') {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(fault.ms, MAX_TIMER_MS))
        )
        continue
      }
      if (fault.kind === 'status') return fault
      return { kind: fault.when === 'before' ? 'dropBefore' : 'dropAfter' }
    }
    return { kind: 'handle' }
  }

  takeForStart(): StartAction {
    const queued = this.startFaults[0]
    if (queued === undefined) return { kind: 'normal' }
    this.consume(this.startFaults, queued)
    const fault = queued.fault
    if (fault.kind === 'errorState') return { kind: 'error' }
    if (fault.kind === 'slowStart') return { kind: 'slow', ms: fault.ms }
    return { kind: 'stuck' }
  }

  private consume<F>(list: Queued<F>[], queued: Queued<F>): void {
    queued.left -= 1
    if (queued.left > 0) return
    const index = list.indexOf(queued)
    if (index >= 0) list.splice(index, 1)
  }
}

function matches(
  queued: Queued<RequestFault>,
  method: string,
  path: string
): boolean {
  const match = queued.fault.match
  if (match?.method !== undefined) {
    if (match.method.toUpperCase() !== method.toUpperCase()) return false
  }
  return queued.pattern === undefined || queued.pattern.test(path)
}

/**
 * Reads faults sent to POST /_control/faults. On the wire `times` is a
 * positive integer, -1 for unlimited, or null/missing for once.
 */
export function parseWireFaults(value: unknown): Fault[] {
  const items = Array.isArray(value) ? value : [value]
  return items.map((item, index) => parseWireFault(item, index))
}

function parseWireFault(item: unknown, index: number): Fault {
  const where = `fault ${String(index)}`
  if (!isObject(item)) throw new Error(`${where} must be a JSON object`)
  const times = wireTimes(item.times, where)
  const match = wireMatch(item.match, where)
  switch (item.kind) {
    case 'status': {
      const status = item.status
      if (!Number.isInteger(status) || !inRange(status, 100, 599)) {
        throw new Error(`${where}: status must be an HTTP status code`)
      }
      const body = item.body
      if (body !== undefined && typeof body !== 'string') {
        throw new Error(`${where}: body must be a string`)
      }
      const headers = wireHeaders(item.headers, where)
      return {
        kind: 'status',
        status: status as number,
        body,
        headers,
        match,
        times
      }
    }
    case 'drop':
      if (item.when !== 'before' && item.when !== 'after') {
        throw new Error(`${where}: when must be "before" or "after"`)
      }
      return { kind: 'drop', when: item.when, match, times }
    case 'delay':
      return { kind: 'delay', ms: wireMs(item.ms, where), match, times }
    case 'errorState':
      return { kind: 'errorState', times }
    case 'slowStart':
      return { kind: 'slowStart', ms: wireMs(item.ms, where), times }
    case 'stuckStart':
      return { kind: 'stuckStart', times }
    default:
      throw new Error(
        `${where}: kind must be one of status, drop, delay, errorState, ` +
          'slowStart, stuckStart'
      )
  }
}

function wireTimes(value: unknown, where: string): number {
  if (value === undefined || value === null) return 1
  if (value === -1) return Infinity
  if (Number.isInteger(value) && (value as number) > 0) return value as number
  throw new Error(`${where}: times must be a positive integer or -1`)
}

function wireMatch(value: unknown, where: string): FaultMatch | undefined {
  if (value === undefined || value === null) return undefined
  if (!isObject(value)) throw new Error(`${where}: match must be an object`)
  const { method, path } = value
  if (method !== undefined && typeof method !== 'string') {
    throw new Error(`${where}: match.method must be a string`)
  }
  if (path !== undefined && typeof path !== 'string') {
    throw new Error(`${where}: match.path must be a string`)
  }
  if (path !== undefined) {
    try {
      new RegExp(path)
    } catch {
      throw new Error(`${where}: match.path is not a valid regex: ${path}`)
    }
  }
  return { method, path }
}

function wireHeaders(
  value: unknown,
  where: string
): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined
  if (!isObject(value)) throw new Error(`${where}: headers must be an object`)
  const headers: Record<string, string> = {}
  for (const [name, header] of Object.entries(value)) {
    if (typeof header !== 'string') {
      throw new Error(`${where}: header ${name} must be a string`)
    }
    headers[name] = header
  }
  return headers
}

function wireMs(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) {
    return value
  }
  throw new Error(`${where}: ms must be a non-negative number`)
}

function inRange(value: unknown, low: number, high: number): boolean {
  return typeof value === 'number' && value >= low && value <= high
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
