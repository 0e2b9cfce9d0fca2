// Reads every input once, into one typed and validated object, before any
// request is sent. Each problem names the input, its value and what is
// accepted; all problems are reported together.

import * as core from '@actions/core'
import { posix } from 'node:path'
import { DEFAULT_BASE_URL, checkBaseUrl } from './smolfleet/base-url.js'
import { SLUG_MAX, normalizeSlug } from './lifecycle/names.js'
import type { NetworkMode } from './smolfleet/types.js'
import { registerSecret } from './security/redact.js'
import { readLegs } from './fanout/legs.js'
import type { Leg } from './fanout/legs.js'

export const MODES = [
  'warmup',
  'run',
  'stop',
  'status',
  'list',
  'legs',
  'merge'
] as const
export type Mode = (typeof MODES)[number]

// Fan-out helpers that never call the API, so they run without a key.
const OFFLINE_MODES: ReadonlySet<Mode> = new Set(['legs', 'merge'])

export const KEY_VARIABLES = [
  'CRABBOX_SMOLVM_API_KEY',
  'SMOLMACHINES_API_KEY',
  'SMK_API_KEY'
]

export interface Inputs {
  mode: Mode
  script: string
  ids: string[]
  slug: string | undefined
  apiKey: string
  baseUrl: string
  image: string
  workdir: string
  cpus: number
  memoryMb: number
  network: NetworkMode
  keep: boolean
  keepOnFailure: boolean
  ttlMinutes: number | undefined
  sync: boolean
  syncOnly: boolean
  forceSyncLarge: boolean
  exclude: string[]
  path: string
  envForward: string[]
  timeoutMinutes: number
  workingDirectory: string
  leaseOutput: string | undefined
  stopSelection: StopSelection | undefined
  dryRun: boolean
  /** mode legs and merge: the fan-out's legs, from shards or legs. */
  legs: Leg[]
  /** mode merge: where the legs' result files are. */
  resultsDir: string
  /** mode run: where to write this leg's result. */
  resultFile: string | undefined
  /** mode run: the leg named in the result file. */
  leg: string | undefined
}

/** Which sandboxes `mode: stop` deletes when no id is given. */
export interface StopSelection {
  /** Only sandboxes whose slug carries this workflow run's marker. */
  runId: string | undefined
  /** Only sandboxes created longer ago than this. */
  olderThanMs: number | undefined
  /** Only sandboxes whose requested slug starts with this, e.g. a fan-out's. */
  slugPrefix: string | undefined
}

/** An input problem: the message is complete and names the input. */
export class InputError extends Error {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? problems[0]
        : `The inputs have ${problems.length} problems:\n- ${problems.join('\n- ')}`
    )
    this.name = 'InputError'
  }
}

// Exactly the workdir roots Crabbox refuses as too broad.
const SYSTEM_ROOTS = new Set([
  '/',
  '/bin',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib64',
  '/opt',
  '/proc',
  '/root',
  '/sbin',
  '/sys',
  '/tmp',
  '/usr',
  '/var'
])

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Resolves the API key and masks it before anything else can print it.
 * The post step calls this too, so it never throws.
 */
export function readApiKey(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [
    core.getInput('api-key'),
    ...KEY_VARIABLES.map((n) => env[n] ?? '')
  ]
  const key = candidates.map((c) => c.trim()).find((c) => c !== '') ?? ''
  if (key) {
    core.setSecret(key)
    registerSecret(key)
  }
  return key
}

/** The validated base URL, for the post step (which must not throw). */
export function readBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const raw = core.getInput('base-url') || env.CRABBOX_SMOLVM_BASE_URL || ''
  return raw.trim() || DEFAULT_BASE_URL
}

export function readAllowCustomBaseUrl(
  env: NodeJS.ProcessEnv = process.env
): boolean {
  const raw = core.getInput('allow-custom-base-url')
  if (raw) return /^(true|1|yes|on)$/i.test(raw.trim())
  return /^(1|true|yes|on)$/i.test(
    (env.CRABBOX_SMOLVM_ALLOW_CUSTOM_BASE_URL ?? '').trim()
  )
}

/**
 * Where mode run writes its leg's result, read without checking the other
 * inputs: when they are refused, a fan-out leg must still leave a result.
 */
export function readResultTarget():
  { path: string; leg: string | undefined } | undefined {
  const mode = core.getInput('mode').trim() || 'run'
  const path = core.getInput('result-file').trim()
  if (mode !== 'run' || !path) return undefined
  return { path, leg: core.getInput('leg').trim() || undefined }
}

export function getInputs(env: NodeJS.ProcessEnv = process.env): Inputs {
  const problems: string[] = []
  const apiKey = readApiKey(env)
  const read = new Reader(problems, env)

  const mode = read.choice('mode', MODES, 'run') as Mode
  const script = core.getInput('run', { trimWhitespace: false })
  const ids = read.lines('id')
  const slugRaw = core.getInput('slug')

  let baseUrl = DEFAULT_BASE_URL
  try {
    baseUrl = checkBaseUrl(readBaseUrl(env), readAllowCustomBaseUrl(env))
  } catch (error) {
    problems.push((error as Error).message)
  }
  if (!apiKey && !OFFLINE_MODES.has(mode)) {
    problems.push(
      `Input api-key is empty and none of ${KEY_VARIABLES.join(', ')} is set; pass the key with api-key: \${{ secrets.SMOLMACHINES_API_KEY }}.`
    )
  }

  const inputs: Inputs = {
    mode,
    script,
    ids,
    slug: undefined,
    apiKey,
    baseUrl,
    image: read.text('image', 'CRABBOX_SMOLVM_IMAGE', 'alpine'),
    workdir: read.workdir(),
    cpus: read.integer('cpus', 'CRABBOX_SMOLVM_CPUS', 2, 1, 64),
    memoryMb: read.integer(
      'memory-mb',
      'CRABBOX_SMOLVM_MEMORY_MB',
      2048,
      128,
      262144
    ),
    network: read.network(),
    keep: read.bool('keep', 'CRABBOX_SMOLVM_KEEP', false),
    keepOnFailure: read.bool('keep-on-failure', undefined, false),
    ttlMinutes: read.optionalInteger('ttl-minutes', 1, 43200),
    sync: read.bool('sync', undefined, true),
    syncOnly: read.bool('sync-only', undefined, false),
    forceSyncLarge: read.bool('force-sync-large', undefined, false),
    exclude: read.lines('exclude'),
    path: core.getInput('path') || env.GITHUB_WORKSPACE || process.cwd(),
    envForward: read.envForward(),
    timeoutMinutes: read.integer('timeout-minutes', undefined, 360, 1, 4320),
    workingDirectory: read.workingDirectory(),
    leaseOutput: core.getInput('lease-output') || undefined,
    stopSelection: mode === 'stop' ? read.stopSelection(env) : undefined,
    dryRun: read.bool('dry-run', undefined, false),
    legs: read.legs(mode),
    resultsDir: core.getInput('results-dir'),
    resultFile: core.getInput('result-file') || undefined,
    leg: core.getInput('leg') || undefined
  }

  if (slugRaw) {
    const slug = normalizeSlug(slugRaw)
    if (!slug) {
      problems.push(
        `Input slug "${slugRaw}" must contain at least one letter or digit.`
      )
    } else if (slug.length > SLUG_MAX) {
      problems.push(
        `Input slug "${slugRaw}" is ${slug.length} characters after normalisation ("${slug}"); at most ${SLUG_MAX} are accepted.`
      )
    } else {
      inputs.slug = slug
    }
    if (ids.length > 0) {
      problems.push(
        'Input slug names a new sandbox, but id reuses an existing one; remove one of them.'
      )
    }
  }

  checkModeRules(inputs, problems)
  if (problems.length > 0) throw new InputError(problems)
  warnIgnored(inputs)
  return inputs
}

function checkModeRules(i: Inputs, problems: string[]): void {
  if (i.mode === 'run') {
    if (!i.script.trim() && !i.syncOnly) {
      problems.push(
        'Input run is empty; mode run needs a script (or set sync-only: true).'
      )
    }
    if (i.ids.length > 1) {
      problems.push(
        `Input id has ${i.ids.length} lines; mode run reuses at most one sandbox.`
      )
    }
    if (i.syncOnly && !i.sync) {
      problems.push(
        'Input sync-only is true but sync is false; sync-only needs sync.'
      )
    }
  }
  if (i.mode === 'status' && i.ids.length !== 1) {
    problems.push(
      'Input id must name exactly one sandbox (lease id, slug or machine id) for mode status.'
    )
  }
  if (i.mode === 'stop' && i.ids.length === 0 && !i.stopSelection) {
    problems.push(
      'Input id is empty; mode stop needs the lease ids, slugs or machine ids to delete (one per line), or a selection (stop-run, older-than).'
    )
  }
  if (i.mode === 'merge' && !i.resultsDir) {
    problems.push(
      "Input results-dir is empty; mode merge needs the directory the legs' result files were downloaded to."
    )
  }
  if (i.mode === 'stop' && i.ids.length > 0 && i.stopSelection) {
    problems.push(
      'Inputs id and stop-run/older-than both select sandboxes to stop; use one of them.'
    )
  }
}

// Inputs that only some modes read, with their action.yml default.
const MODE_INPUTS: [string, Mode[], string | undefined][] = [
  ['slug', ['warmup', 'run'], undefined],
  ['keep', ['warmup', 'run'], undefined],
  ['keep-on-failure', ['run'], 'false'],
  ['ttl-minutes', ['warmup', 'run'], undefined],
  ['sync-only', ['run'], 'false'],
  ['force-sync-large', ['run'], 'false'],
  ['exclude', ['run'], undefined],
  ['env-forward', ['run'], undefined],
  ['working-directory', ['run'], undefined],
  ['lease-output', ['warmup', 'run'], undefined],
  ['result-file', ['run'], undefined],
  ['dry-run', ['stop'], 'false']
]

function warnIgnored(i: Inputs): void {
  if (i.mode !== 'run' && i.script.trim()) {
    core.warning(
      `Input run is ignored in mode ${i.mode}; remove it or set mode: run.`
    )
  }
  if (i.mode === 'run' && i.syncOnly && i.script.trim()) {
    core.warning(
      'Input run is ignored because sync-only is true; remove one of them.'
    )
  }
  for (const [name, modes, fallback] of MODE_INPUTS) {
    const value = core.getInput(name)
    if (value && value !== fallback && !modes.includes(i.mode)) {
      core.warning(
        `Input ${name} is ignored in mode ${i.mode}; it applies to mode ${modes.join(' and ')}. Remove it from this step.`
      )
    }
  }
  if (i.mode === 'warmup' && core.getInput('keep') === 'false') {
    core.warning(
      'mode warmup always keeps the sandbox until mode stop deletes it; keep: false is ignored.'
    )
  }
}

/** Input readers that collect problems instead of throwing at the first. */
class Reader {
  constructor(
    private readonly problems: string[],
    private readonly env: NodeJS.ProcessEnv
  ) {}

  private raw(name: string, variable: string | undefined): [string, string] {
    const value = core.getInput(name)
    if (value) return [value, `Input ${name}`]
    const fromEnv = variable ? (this.env[variable] ?? '').trim() : ''
    return [fromEnv, `Variable ${variable ?? ''}`]
  }

  text(name: string, variable: string, fallback: string): string {
    const [value, label] = this.raw(name, variable)
    if (!value) return fallback
    if (/\s/.test(value)) {
      this.problems.push(`${label} "${value}" must not contain spaces.`)
    }
    return value
  }

  choice(name: string, accepted: readonly string[], fallback: string): string {
    const value = core.getInput(name).toLowerCase()
    if (!value) return fallback
    if (!accepted.includes(value)) {
      this.problems.push(
        `Input ${name} "${value}" is not one of ${accepted.join(', ')}.`
      )
      return fallback
    }
    return value
  }

  bool(name: string, variable: string | undefined, fallback: boolean): boolean {
    const input = core.getInput(name)
    if (input) {
      if (/^(true|True|TRUE)$/.test(input)) return true
      if (/^(false|False|FALSE)$/.test(input)) return false
      this.problems.push(
        `Input ${name} "${input}" is not a boolean; use true or false.`
      )
      return fallback
    }
    const fromEnv = variable
      ? (this.env[variable] ?? '').trim().toLowerCase()
      : ''
    if (/^(1|true|yes|on)$/.test(fromEnv)) return true
    if (/^(0|false|no|off)$/.test(fromEnv)) return false
    return fallback
  }

  integer(
    name: string,
    variable: string | undefined,
    fallback: number,
    min: number,
    max: number
  ): number {
    const [value, label] = this.raw(name, variable)
    if (!value) return fallback
    return this.checkInteger(value, label, min, max) ?? fallback
  }

  optionalInteger(name: string, min: number, max: number): number | undefined {
    const value = core.getInput(name)
    return value
      ? this.checkInteger(value, `Input ${name}`, min, max)
      : undefined
  }

  private checkInteger(
    value: string,
    label: string,
    min: number,
    max: number
  ): number | undefined {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(
        `${label} "${value}" must be a whole number from ${min} to ${max}.`
      )
      return undefined
    }
    return Number(value)
  }

  network(): NetworkMode {
    const [value, label] = this.raw('network', 'CRABBOX_SMOLVM_NETWORK')
    const v = value.toLowerCase()
    if (!v || v === 'open' || v === 'public') return 'open'
    if (v === 'blocked' || v === 'private') return 'blocked'
    this.problems.push(
      `${label} "${value}" is not a network mode; use open or blocked.`
    )
    return 'open'
  }

  workdir(): string {
    const [value, label] = this.raw('workdir', 'CRABBOX_SMOLVM_WORKDIR')
    if (!value) return '/workspace'
    const cleaned = posix.normalize(value).replace(/(.)\/+$/, '$1')
    if (!value.startsWith('/')) {
      this.problems.push(
        `${label} "${value}" must be an absolute path under /workspace, such as /workspace/repo.`
      )
    } else if (SYSTEM_ROOTS.has(cleaned)) {
      this.problems.push(
        `${label} "${value}" resolves to ${cleaned}, a system directory; use /workspace or a directory under it.`
      )
    } else if (cleaned !== '/workspace' && !cleaned.startsWith('/workspace/')) {
      this.problems.push(
        `${label} "${value}" resolves to ${cleaned}, outside /workspace; use /workspace or a directory under it.`
      )
    }
    return cleaned
  }

  workingDirectory(): string {
    const value = core.getInput('working-directory')
    if (!value) return ''
    const cleaned = posix.normalize(value).replace(/\/+$/, '')
    if (
      value.startsWith('/') ||
      cleaned === '..' ||
      cleaned.startsWith('../')
    ) {
      this.problems.push(
        `Input working-directory "${value}" must be a relative path inside the workdir, such as packages/app.`
      )
      return ''
    }
    return cleaned === '.' ? '' : cleaned
  }

  lines(name: string): string[] {
    return core
      .getInput(name)
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
  }

  envForward(): string[] {
    const names = this.lines('env-forward')
      .flatMap((l) => l.split(/[\s,]+/))
      .filter(Boolean)
    for (const name of names) {
      const bare = name.endsWith('*') ? name.slice(0, -1) : name
      if (!ENV_NAME.test(bare)) {
        this.problems.push(
          `Input env-forward has "${name}", which is not a variable name; use NAME or PREFIX* with letters, digits and _.`
        )
      }
    }
    return names
  }

  legs(mode: Mode): Leg[] {
    if (!OFFLINE_MODES.has(mode)) return []
    const { legs, problems, warnings } = readLegs(
      core.getInput('shards'),
      core.getInput('legs')
    )
    this.problems.push(...problems)
    // Merge reads the same legs back; once is enough.
    if (mode === 'legs') for (const w of warnings) core.warning(w)
    return legs
  }

  stopSelection(env: NodeJS.ProcessEnv): StopSelection | undefined {
    const run = core.getInput('stop-run').trim()
    const age = core.getInput('older-than').trim()
    const prefix = core.getInput('slug-prefix').trim()
    if (!run && !age) {
      if (prefix) {
        this.problems.push(
          `Input slug-prefix "${prefix}" narrows a selection; set stop-run or older-than too.`
        )
      }
      return undefined
    }
    let slugPrefix: string | undefined
    if (prefix) {
      // Slugs are normalised to lowercase letters, digits and dashes.
      if (/^[a-z0-9][a-z0-9-]*$/.test(prefix)) slugPrefix = prefix
      else
        this.problems.push(
          `Input slug-prefix "${prefix}" must be lowercase letters, digits and dashes, starting with a letter or digit, as slugs are.`
        )
    }
    let runId: string | undefined
    if (run === 'current') {
      runId = env.GITHUB_RUN_ID
      if (!runId) {
        this.problems.push(
          'Input stop-run is "current" but GITHUB_RUN_ID is not set; give the run id instead.'
        )
      }
    } else if (run) {
      if (/^\d+$/.test(run)) runId = run
      else
        this.problems.push(
          `Input stop-run "${run}" must be "current" or a workflow run id (digits).`
        )
    }
    let olderThanMs: number | undefined
    if (age) {
      olderThanMs = parseDuration(age)
      if (olderThanMs === undefined) {
        this.problems.push(
          `Input older-than "${age}" is not a duration; use a number with s, m, h or d, such as 90m or 2h.`
        )
      }
    }
    return { runId, olderThanMs, slugPrefix }
  }
}

export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)\s*(s|m|h|d)$/i.exec(text.trim())
  if (!match) return undefined
  const unit = { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[
    (match[2] as string).toLowerCase() as 's'
  ]
  return Number(match[1]) * unit
}
