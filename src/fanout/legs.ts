// The legs of a fan-out, from a shard count or an explicit list, and the
// strategy.matrix value the fan-out workflow runs them with. A leg's name
// also names its result file and artifact, so names are restricted to
// characters that are safe in both.

import { randomBytes } from 'node:crypto'
import { SLUG_MAX, normalizeSlug } from '../lifecycle/names.js'

/** A per-leg setting from an explicit list, such as an image or CPU count. */
export type LegValue = string | number | boolean

export interface Leg {
  /** Shown in the merged table; names the leg's result file. */
  name: string
  /** Position in the fan-out, from 0. */
  index: number
  total: number
  /** The other fields of an object in an explicit list. */
  fields: Record<string, LegValue>
}

/** One entry of the matrix's include list. */
export type MatrixEntry = Record<string, LegValue> & {
  leg: string
  index: number
  total: number
  /** The slug of the leg's new sandbox, which starts with the fan-out key. */
  slug: string
}

/** GitHub runs at most 256 jobs from one matrix. */
export const MAX_LEGS = 256

const LEG_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/
// The matrix adds these itself; a list that sets them would be ambiguous.
const RESERVED = new Set(['index', 'total', 'slug'])

// The per-leg fields fanout.yml applies, each with its check. A problem
// names the accepted form; undefined means the value is fine.
const APPLIED: Record<string, (value: LegValue) => string | undefined> = {
  image: (v) =>
    typeof v === 'string' && /^\S+$/.test(v)
      ? undefined
      : 'an image reference without spaces, such as "alpine:3.20"',
  cpus: (v) => wholeNumber(v, 1, 64),
  'memory-mb': (v) => wholeNumber(v, 128, 262144),
  run: (v) => (typeof v === 'string' ? undefined : 'a script as a string'),
  keep: (v) => (typeof v === 'boolean' ? undefined : 'true or false unquoted'),
  'keep-on-failure': (v) =>
    typeof v === 'boolean' ? undefined : 'true or false unquoted'
}

function wholeNumber(
  v: LegValue,
  min: number,
  max: number
): string | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
    ? undefined
    : `a whole number from ${min} to ${max}, unquoted`
}

export interface LegsReading {
  legs: Leg[]
  problems: string[]
  /** Fields the fan-out does not apply; they only reach SMOLVM_LEG_JSON. */
  warnings: string[]
}

/**
 * Reads the legs from the raw `shards` and `legs` inputs; exactly one of
 * them must be set. Problems name the input and the accepted form.
 */
export function readLegs(shards: string, list: string): LegsReading {
  const s = shards.trim()
  const l = list.trim()
  if (s && l) {
    return fail(
      'Inputs shards and legs both describe the legs; use one of them.'
    )
  }
  if (s) return shardLegs(s)
  if (l) return listLegs(l)
  return fail(
    'Inputs shards and legs are both empty; set shards to a number of shards or legs to a list of leg names.'
  )
}

/** `shards: N` gives legs shard-1 to shard-N with index 0 to N-1. */
export function shardLegs(text: string): LegsReading {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_LEGS) {
    return fail(
      `Input shards "${text}" must be a whole number from 1 to ${MAX_LEGS} (GitHub's limit of jobs per matrix).`
    )
  }
  const legs = Array.from({ length: n }, (_, index) => ({
    name: `shard-${index + 1}`,
    index,
    total: n,
    fields: {}
  }))
  return { legs, problems: [], warnings: [] }
}

/**
 * An explicit list: a JSON array of names or objects, the matrix that mode
 * legs printed (so merge can take that output as is), or one name a line.
 */
export function listLegs(text: string): LegsReading {
  let items: unknown[]
  if (text.startsWith('[') || text.startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      return fail(
        `Input legs looks like JSON but does not parse (${(error as Error).message}); use a JSON array such as ["unit", "e2e"] or one name per line.`
      )
    }
    const include = (parsed as { include?: unknown } | null)?.include
    if (Array.isArray(parsed)) items = parsed
    else if (Array.isArray(include)) items = include
    else {
      return fail(
        'Input legs is a JSON object without an include list; use a JSON array of leg names or objects.'
      )
    }
  } else {
    items = text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
  }

  const problems: string[] = []
  const warnings: string[] = []
  const named = items.map((item, i) => toLeg(item, i, problems, warnings))
  const seen = new Map<string, string>()
  for (const leg of named) {
    if (!leg) continue
    const key = leg.name.toLowerCase()
    const other = seen.get(key)
    // Artifact names ignore case, so "Unit" and "unit" would collide.
    if (other !== undefined) {
      problems.push(
        `Input legs names the leg "${leg.name}" twice${other === leg.name ? '' : ` (as "${other}")`}; leg names must be unique, ignoring case.`
      )
    }
    seen.set(key, leg.name)
  }
  if (items.length === 0) problems.push('Input legs has no legs.')
  if (items.length > MAX_LEGS) {
    problems.push(
      `Input legs has ${items.length} legs; GitHub runs at most ${MAX_LEGS} jobs per matrix.`
    )
  }
  if (problems.length > 0) return { legs: [], problems, warnings }
  const total = items.length
  const legs = named.map((leg, index) => ({
    ...(leg as Omit<Leg, 'index' | 'total'>),
    index,
    total
  }))
  return { legs, problems, warnings }
}

function toLeg(
  item: unknown,
  i: number,
  problems: string[],
  warnings: string[]
): Omit<Leg, 'index' | 'total'> | undefined {
  const where = `Input legs entry ${i + 1}`
  if (typeof item === 'string') {
    return checkName(item, where, problems)
      ? { name: item, fields: {} }
      : undefined
  }
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    problems.push(
      `${where} is ${JSON.stringify(item)}; use a leg name or an object with a name.`
    )
    return undefined
  }
  const { name, leg, ...rest } = item as Record<string, unknown>
  const chosen = name ?? leg
  if (typeof chosen !== 'string') {
    problems.push(
      `${where} has no name; give each object a "name" such as {"name": "alpine", "image": "alpine:3.20"}.`
    )
    return undefined
  }
  if (!checkName(chosen, where, problems)) return undefined
  const fields: Record<string, LegValue> = {}
  for (const [key, value] of Object.entries(rest)) {
    // The matrix output of mode legs carries index, total and slug; they
    // are recomputed, so reading that output back is lossless.
    if (RESERVED.has(key)) continue
    if (!FIELD_NAME.test(key)) {
      problems.push(
        `${where} ("${chosen}") has the field "${key}"; field names use letters, digits, _ and -.`
      )
      continue
    }
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      problems.push(
        `${where} ("${chosen}") field "${key}" is ${JSON.stringify(value)}; per-leg fields are strings, numbers or booleans.`
      )
      continue
    }
    const check = APPLIED[key]
    const accepted = check?.(value as LegValue)
    if (accepted) {
      problems.push(
        `${where} ("${chosen}") field "${key}" is ${JSON.stringify(value)}; use ${accepted}.`
      )
      continue
    }
    if (!check) {
      warnings.push(
        `Leg "${chosen}" has the field "${key}", which the fan-out does not apply; the script sees it only in SMOLVM_LEG_JSON. Per-leg settings are ${Object.keys(APPLIED).join(', ')}.`
      )
    }
    fields[key] = value as LegValue
  }
  return { name: chosen, fields }
}

function checkName(name: string, where: string, problems: string[]): boolean {
  if (LEG_NAME.test(name)) return true
  problems.push(
    `${where} "${name}" is not a leg name; use 1 to 40 letters, digits, ., _ or -, starting with a letter or digit.`
  )
  return false
}

function fail(problem: string): LegsReading {
  return { legs: [], problems: [problem], warnings: [] }
}

/**
 * A new fan-out key: six hex digits that set apart the slugs and artifacts
 * of one fan-out from those of any other in the same workflow run.
 */
export function newFanoutKey(): string {
  return randomBytes(3).toString('hex')
}

/** What every slug of the fan-out's legs starts with. */
export function fanoutSlugPrefix(key: string): string {
  return `fo${key}-`
}

/**
 * The slug a leg asks for: the fan-out's prefix and the leg's name,
 * normalised and cut to what a slug allows. Two long names may then ask
 * for the same slug; the sandboxes still differ by their lease suffix.
 */
export function legSlug(key: string, leg: string): string {
  return normalizeSlug(`${fanoutSlugPrefix(key)}${leg}`)
    .slice(0, SLUG_MAX)
    .replace(/-+$/, '')
}

/** The legs as the value of `strategy.matrix`. */
export function toMatrix(legs: Leg[], key: string): { include: MatrixEntry[] } {
  return {
    include: legs.map((l) => ({
      ...l.fields,
      leg: l.name,
      index: l.index,
      total: l.total,
      slug: legSlug(key, l.name)
    }))
  }
}
