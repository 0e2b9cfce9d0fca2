// Small HTTP helpers for the local smolfleet server: answers as values,
// request bodies, and server-sent events.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { errorMessage } from './errors.js'

/** An error answer; its message becomes the text/plain body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
  }
}

export type EventSender = (event: string, data: string) => void

export interface Reply {
  status: number
  headers?: Record<string, string>
  body?: string | Buffer
  /** For text/event-stream answers: runs until the stream is complete. */
  stream?: (send: EventSender) => Promise<void>
}

export function text(status: number, body: string): Reply {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body
  }
}

export function json(status: number, value: unknown): Reply {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value)
  }
}

export function empty(status: number): Reply {
  return { status }
}

export function bytes(status: number, body: Buffer): Reply {
  return {
    status,
    headers: { 'content-type': 'application/octet-stream' },
    body
  }
}

export function sse(stream: (send: EventSender) => Promise<void>): Reply {
  return { status: 200, stream }
}

/** A fault's body goes out as JSON when it parses as JSON, else as text. */
export function faultReply(
  status: number,
  body: string | undefined,
  headers: Record<string, string> | undefined
): Reply {
  const reply = body === undefined ? empty(status) : text(status, body)
  if (body !== undefined && parsesAsJson(body)) {
    reply.headers = { 'content-type': 'application/json' }
  }
  reply.headers = { ...reply.headers, ...headers }
  return reply
}

export interface ReadBody {
  body: Buffer
  /** All bytes received, even those past the limit. */
  size: number
}

/**
 * Reads the whole body. Past `limit` bytes the rest is drained and
 * dropped, so an oversized upload costs no memory but still gets its 413.
 */
export async function readBody(
  req: IncomingMessage,
  limit: number | undefined
): Promise<ReadBody> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    const buffer = chunk as Buffer
    size += buffer.length
    if (limit === undefined || size <= limit) chunks.push(buffer)
  }
  return { body: Buffer.concat(chunks), size }
}

/** Parses a JSON body; an empty body counts as `{}`. */
export function parseJsonBody(body: Buffer): unknown {
  const source = body.toString('utf8')
  if (source.trim() === '') return {}
  try {
    return JSON.parse(source) as unknown
  } catch (error) {
    const reason = errorMessage(error)
    throw new ApiError(400, `request body is not valid JSON: ${reason}`)
  }
}

export async function sendReply(
  res: ServerResponse,
  reply: Reply,
  headers: Record<string, string>
): Promise<void> {
  if (res.destroyed) return
  if (reply.stream === undefined) {
    res.writeHead(reply.status, { ...headers, ...reply.headers })
    res.end(reply.body)
    return
  }

  res.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache'
  })
  res.flushHeaders()
  // The client may hang up at any time; the command still runs to its end.
  const open = (): boolean => !res.destroyed
  await reply.stream((event, data) => {
    if (open()) res.write(formatEvent(event, data))
  })
  if (open()) res.end()
}

/**
 * One SSE event. Each line of the data becomes its own `data:` line, which
 * a client joins with "\n". SSE cannot carry a bare "\r", so a lone
 * carriage return (progress bars) arrives as a line break.
 */
export function formatEvent(event: string, data: string): string {
  const lines = data.split(/\r\n|\r|\n/)
  return `event: ${event}\n${lines.map((line) => `data: ${line}\n`).join('')}\n`
}

function parsesAsJson(body: string): boolean {
  try {
    JSON.parse(body)
    return true
  } catch {
    return false
  }
}
