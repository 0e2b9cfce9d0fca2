// Lease ids, slugs and machine names, compatible with the Crabbox CLI so
// that either tool can list and stop what the other made.

import { randomBytes } from 'node:crypto'

export const MACHINE_NAME = /^crabbox-(.+)-([0-9a-f]{12})$/
export const LEASE_ID = /^cbx_[0-9a-f]{12}$/
export const SLUG_MAX = 41

const ADJECTIVES = [
  'amber',
  'blue',
  'brisk',
  'coral',
  'crimson',
  'golden',
  'harbor',
  'jade',
  'pearl',
  'quick',
  'silver',
  'swift',
  'tidal',
  'violet'
]
const NOUNS = [
  'barnacle',
  'crab',
  'crayfish',
  'hermit',
  'krill',
  'lobster',
  'prawn',
  'shrimp'
]

export interface LeaseIdentity {
  leaseId: string
  slug: string
  name: string
}

export function newLeaseId(): string {
  return `cbx_${randomBytes(6).toString('hex')}`
}

export function fnv1a32(text: string): number {
  let h = 2166136261
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte
    h = Math.imul(h, 16777619) >>> 0
  }
  return h
}

/** Crabbox's generated slug: an adjective and a noun picked by FNV-1a. */
export function generatedSlug(leaseId: string): string {
  const h = fnv1a32(leaseId)
  const adjective = ADJECTIVES[h % 14] as string
  const noun = NOUNS[Math.floor(h / 14) % 8] as string
  return `${adjective}-${noun}`
}

export function normalizeSlug(raw: string): string {
  return raw
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
}

/** Four hex digits that set apart slugs which would otherwise collide. */
export function collisionSuffix(seed: string): string {
  return (fnv1a32(seed) & 0xffff).toString(16).padStart(4, '0')
}

/**
 * The marker of the workflow run that made a sandbox. It ends the slug so
 * that cleanup can find every sandbox of a run without knowing their ids.
 */
export function runMarker(
  env: NodeJS.ProcessEnv,
  handOver: boolean
): string | undefined {
  const id = env.GITHUB_RUN_ID?.trim()
  if (!id || !/^\d+$/.test(id)) return undefined
  const attempt = env.GITHUB_RUN_ATTEMPT?.trim()
  const n = attempt && /^\d+$/.test(attempt) ? attempt : '1'
  // "-keep" marks a sandbox handed over on purpose (keep: true): cleanup of
  // the run spares it, while the age-based sweeper still applies.
  return `gh${id}-${n}${handOver ? '-keep' : ''}`
}

export const RUN_MARKER = /-[0-9a-f]{4}-gh(\d+)-(\d+)(-keep)?$/

/**
 * Chooses the identity of a new sandbox. Inside a workflow run the slug
 * gets a per-lease suffix and the run marker, so that the legs of a matrix
 * asking for the same slug still get distinct, findable names.
 */
export function newIdentity(
  requestedSlug: string | undefined,
  env: NodeJS.ProcessEnv,
  handOver = false,
  leaseId = newLeaseId()
): LeaseIdentity {
  const base = requestedSlug
    ? normalizeSlug(requestedSlug)
    : generatedSlug(leaseId)
  const marker = runMarker(env, handOver)
  const slug = marker ? `${base}-${collisionSuffix(leaseId)}-${marker}` : base
  return { leaseId, slug, name: `crabbox-${slug}-${leaseId.slice(4)}` }
}

/** Lease id and slug of a machine named by Crabbox or by this action. */
export function parseMachineName(
  name: string
): { leaseId: string; slug: string } | undefined {
  const match = MACHINE_NAME.exec(name.trim())
  if (!match) return undefined
  return { leaseId: `cbx_${match[2] as string}`, slug: match[1] as string }
}
