// The only place that knows the names of the values main hands to post.
// State holds identifiers, never secrets: the post step reads the key from
// its inputs again.

import * as core from '@actions/core'

/** What the post step must do about the sandbox main created. */
export type Cleanup = 'delete' | 'keep' | 'done'

export interface SavedLease {
  leaseId: string
  slug: string
  name: string
  machineId: string
  cleanup: Cleanup
}

const KEYS = {
  leaseId: 'lease-id',
  slug: 'slug',
  name: 'machine-name',
  machineId: 'machine-id',
  cleanup: 'cleanup'
} as const

export function saveLease(lease: SavedLease): void {
  core.saveState(KEYS.leaseId, lease.leaseId)
  core.saveState(KEYS.slug, lease.slug)
  core.saveState(KEYS.name, lease.name)
  core.saveState(KEYS.machineId, lease.machineId)
  core.saveState(KEYS.cleanup, lease.cleanup)
}

export function saveMachineId(machineId: string): void {
  core.saveState(KEYS.machineId, machineId)
}

export function saveCleanup(cleanup: Cleanup): void {
  core.saveState(KEYS.cleanup, cleanup)
}

/** The lease main saved, or undefined when main created nothing. */
export function loadLease(): SavedLease | undefined {
  const name = core.getState(KEYS.name)
  const machineId = core.getState(KEYS.machineId)
  if (!name && !machineId) return undefined
  const cleanup = core.getState(KEYS.cleanup)
  return {
    leaseId: core.getState(KEYS.leaseId),
    slug: core.getState(KEYS.slug),
    name,
    machineId,
    cleanup: cleanup === 'keep' || cleanup === 'done' ? cleanup : 'delete'
  }
}
