// Request checks for the local smolfleet server. Like the hosted API, a
// schema problem is a 422, a broken semantic rule a 400, and unknown fields
// are dropped (except a top-level `image`, which the hosted API rejects).

import path from 'node:path'
import { isObject } from './faults.js'
import { ApiError } from './http.js'

export type NetworkMode = 'open' | 'blocked' | 'allowCidrs'

export interface CreateSpec {
  name?: string
  source: { type: 'image'; reference: string }
  resources: { cpus: number; memoryMb: number; diskGb: number }
  network: { mode: NetworkMode; cidrs?: string[]; hosts?: string[] }
  workdir: string
  env: Record<string, string>
  ttlSeconds?: number
}

export interface ExecBody {
  command: string | string[]
  cwd?: string
  env: Record<string, string>
  stdin?: string
  timeoutSeconds?: number
}

const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,126}$/
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/
const NETWORK_MODES: NetworkMode[] = ['open', 'blocked', 'allowCidrs']
const NOT_ON_DISK = ['/bin', '/proc', '/dev', '/sys']

export function parseCreate(body: unknown): CreateSpec {
  const fields = object(body, 'request body')
  if ('image' in fields) {
    schema('image is not a field; use source: {type: "image", reference}')
  }

  const name = optional(fields.name, 'name', string)
  if (name !== undefined && !NAME_PATTERN.test(name)) {
    schema(
      `name must match ${NAME_PATTERN.source}, got ${JSON.stringify(name)}`
    )
  }

  const source = object(fields.source, 'source')
  if (source.type !== 'image') schema('source.type must be "image"')
  const reference = string(source.reference, 'source.reference')
  if (reference.trim() === '') schema('source.reference must not be empty')

  const resources =
    fields.resources === undefined ? {} : object(fields.resources, 'resources')
  const cpus = optional(resources.cpus, 'resources.cpus', positiveInteger)
  const memoryMb = optional(
    resources.memoryMb,
    'resources.memoryMb',
    positiveInteger
  )
  const diskGb = optional(resources.diskGb, 'resources.diskGb', positiveInteger)

  const network = parseNetwork(fields.network)
  const workdir = guestDir(
    optional(fields.workdir, 'workdir', string) ?? '/workspace',
    'workdir'
  )
  const env = optional(fields.env, 'env', envMap) ?? {}
  optional(fields.ephemeral, 'ephemeral', boolean)
  optional(fields.autoStopSeconds, 'autoStopSeconds', positiveInteger)
  const ttlSeconds = optional(fields.ttlSeconds, 'ttlSeconds', positiveInteger)

  return {
    name,
    source: { type: 'image', reference },
    resources: {
      cpus: cpus ?? 1,
      memoryMb: memoryMb ?? 512,
      diskGb: diskGb ?? 10
    },
    network,
    workdir,
    env,
    ttlSeconds
  }
}

export function parseExec(body: unknown): ExecBody {
  const fields = object(body, 'request body')
  const command = fields.command
  if (typeof command === 'string') {
    if (command === '') schema('command must not be empty')
  } else if (Array.isArray(command)) {
    if (command.length === 0) schema('command must not be an empty array')
    command.forEach((arg, i) => string(arg, `command[${String(i)}]`))
    if (command[0] === '') schema('command[0] must not be empty')
  } else {
    schema('command must be a string or an array of strings')
  }

  const cwd = optional(fields.cwd, 'cwd', string)
  return {
    command: command as string | string[],
    cwd: cwd === undefined ? undefined : guestDir(cwd, 'cwd'),
    env: optional(fields.env, 'env', envMap) ?? {},
    stdin: optional(fields.stdin, 'stdin', string),
    timeoutSeconds: optional(
      fields.timeoutSeconds,
      'timeoutSeconds',
      positiveNumber
    )
  }
}

/** The command text for the request log, read before any checks. */
export function commandForLog(body: unknown): string | undefined {
  const command = isObject(body) ? body.command : undefined
  if (typeof command === 'string') return command.slice(0, 200)
  if (Array.isArray(command)) return command.join(' ').slice(0, 200)
  return undefined
}

function parseNetwork(value: unknown): CreateSpec['network'] {
  if (value === undefined) return { mode: 'open' }
  const network = object(value, 'network')
  const mode = network.mode
  if (!NETWORK_MODES.includes(mode as NetworkMode)) {
    schema(`network.mode must be one of ${NETWORK_MODES.join(', ')}`)
  }
  const cidrs = optional(network.cidrs, 'network.cidrs', stringList)
  const hosts = optional(network.hosts, 'network.hosts', stringList)
  const allowList = cidrs !== undefined || hosts !== undefined
  if (mode === 'allowCidrs' && !allowList) {
    throw new ApiError(
      400,
      'network.cidrs or network.hosts is required when network.mode is allowCidrs'
    )
  }
  if (mode !== 'allowCidrs' && allowList) {
    throw new ApiError(
      400,
      'network.cidrs and network.hosts are only allowed with network.mode allowCidrs'
    )
  }
  return { mode: mode as NetworkMode, cidrs, hosts }
}

/** An absolute guest directory on the machine's disk, normalised. */
function guestDir(value: string, field: string): string {
  if (!value.startsWith('/')) {
    schema(`${field} must be an absolute path, got ${JSON.stringify(value)}`)
  }
  const normal = path.posix.normalize(value).replace(/(.)\/+$/, '$1')
  const mounted = NOT_ON_DISK.some(
    (dir) => normal === dir || normal.startsWith(`${dir}/`)
  )
  if (mounted) schema(`${field} must be on the machine's disk, not ${normal}`)
  return normal
}

function schema(message: string): never {
  throw new ApiError(422, message)
}

function optional<T>(
  value: unknown,
  field: string,
  check: (value: unknown, field: string) => T
): T | undefined {
  return value === undefined || value === null ? undefined : check(value, field)
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (!isObject(value)) schema(`${field} must be a JSON object`)
  return value
}

function string(value: unknown, field: string): string {
  if (typeof value !== 'string') schema(`${field} must be a string`)
  return value
}

function boolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') schema(`${field} must be a boolean`)
  return value
}

function positiveInteger(value: unknown, field: string): number {
  if (!Number.isInteger(value) || (value as number) <= 0) {
    schema(`${field} must be a positive integer, got ${JSON.stringify(value)}`)
  }
  return value as number
}

function positiveNumber(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    schema(`${field} must be a positive number, got ${JSON.stringify(value)}`)
  }
  return value
}

function stringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) schema(`${field} must be an array of strings`)
  return value.map((item, i) => string(item, `${field}[${String(i)}]`))
}

function envMap(value: unknown, field: string): Record<string, string> {
  const fields = object(value, field)
  const env: Record<string, string> = {}
  for (const [name, item] of Object.entries(fields)) {
    if (!ENV_NAME_PATTERN.test(name)) {
      schema(`${field} has an invalid variable name: ${JSON.stringify(name)}`)
    }
    env[name] = string(item, `${field}.${name}`)
  }
  return env
}
