// Creating, finding and deleting sandboxes. A new sandbox's name is chosen
// and saved to the step's state before the create call, so that a lost
// answer or a cancelled step can still be cleaned up by name.

import type { SmolfleetClient } from '../smolfleet/client.js'
import { ApiError, TransportError } from '../smolfleet/errors.js'
import { TRANSIENT_STATUSES } from '../smolfleet/retry.js'
import type { MachineRecord, NetworkMode } from '../smolfleet/types.js'
import { normalizeSlug, parseMachineName, runMarker } from './names.js'
import type { LeaseIdentity } from './names.js'

export interface Sandbox {
  leaseId: string
  slug: string
  name: string
  machineId: string
  state: string
}

export interface SandboxShape {
  image: string
  workdir: string
  cpus: number
  memoryMb: number
  network: NetworkMode
  /** Delete on the server after this long if nobody does it first. */
  ttlSeconds: number | undefined
  /** Tells the server the sandbox is meant to be short-lived. */
  ephemeral: boolean
}

export interface LifecycleRuntime {
  now(): number
  sleep(ms: number): Promise<void>
  log(message: string): void
  /** Called once the server has given the new machine an id. */
  onMachineId(machineId: string): void
  readyTimeoutMs: number
}

const READY = new Set(['running', 'started', 'ready', 'idle', 'active'])

/** Ready states only; an empty, paused or unknown state is not ready. */
export function isReady(state: string): boolean {
  return READY.has(state.trim().toLowerCase())
}
const FAILED = new Set(['error', 'failed', 'erroring'])
const GONE = new Set(['deleted', 'deleting', 'destroyed', 'terminated'])

/** Creates, starts and waits for a sandbox; deletes it if any step fails. */
export async function createSandbox(
  client: SmolfleetClient,
  identity: LeaseIdentity,
  shape: SandboxShape,
  rt: LifecycleRuntime,
  cleanupClient: SmolfleetClient = client
): Promise<Sandbox> {
  const machine = await createOrAdopt(client, identity, shape, rt)
  rt.onMachineId(machine.id)
  try {
    await startMachine(client, machine.id, rt)
    const ready = await waitReady(client, machine, rt)
    return toSandbox(identity, ready)
  } catch (error) {
    await deleteQuietly(cleanupClient, machine.id, rt)
    throw error
  }
}

async function createOrAdopt(
  client: SmolfleetClient,
  identity: LeaseIdentity,
  shape: SandboxShape,
  rt: LifecycleRuntime
): Promise<MachineRecord> {
  const body = {
    name: identity.name,
    source: { type: 'image' as const, reference: shape.image },
    resources: { cpus: shape.cpus, memoryMb: shape.memoryMb },
    network: { mode: shape.network },
    workdir: shape.workdir,
    ...(shape.ephemeral ? { ephemeral: true } : {}),
    ...(shape.ttlSeconds ? { ttlSeconds: shape.ttlSeconds } : {})
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.createMachine(body)
    } catch (error) {
      // Create is never simply re-sent. The name is ours alone, so after a
      // lost answer, a 5xx that may have acted, or a 409, a machine with
      // that name is the one we asked for; only when there is none is the
      // create sent again.
      if (error instanceof TransportError && !error.sent) throw error
      const maybe =
        error instanceof TransportError ||
        (error instanceof ApiError && TRANSIENT_STATUSES.has(error.status))
      const exists = error instanceof ApiError && error.status === 409
      if (!maybe && !exists) throw error
      const found = await findByName(client, identity.name)
      if (found) {
        rt.log(
          `Adopted ${found.id}, created under our name ${identity.name} although the create answer was lost.`
        )
        return found
      }
      if (exists || attempt >= CREATE_ATTEMPTS) throw error
      rt.log(
        `${(error as Error).message}; no machine has our name, so the create is sent again (attempt ${attempt + 1} of ${CREATE_ATTEMPTS}).`
      )
      await rt.sleep(500 * 2 ** attempt)
    }
  }
}

const CREATE_ATTEMPTS = 4

async function findByName(
  client: SmolfleetClient,
  name: string
): Promise<MachineRecord | undefined> {
  const machines = await client.listMachines()
  return machines.find((m) => m.name === name)
}

async function startMachine(
  client: SmolfleetClient,
  machineId: string,
  rt: LifecycleRuntime
): Promise<void> {
  try {
    await client.startMachine(machineId)
  } catch (error) {
    // Some backends start machines themselves and refuse /start; readiness
    // is decided by polling, so only a missing machine or a bad key stops us.
    if (
      !(error instanceof ApiError) ||
      [401, 403, 404].includes(error.status)
    ) {
      throw error
    }
    rt.log(
      `The start call answered ${error.status}; waiting for the sandbox to become ready anyway.`
    )
  }
}

async function waitReady(
  client: SmolfleetClient,
  created: MachineRecord,
  rt: LifecycleRuntime
): Promise<MachineRecord> {
  const deadline = rt.now() + rt.readyTimeoutMs
  let machine = created
  let interval = 250
  for (;;) {
    const state = machine.state.trim().toLowerCase()
    if (READY.has(state)) return machine
    if (FAILED.has(state)) {
      throw new Error(
        `Sandbox ${machine.id} entered state "${machine.state}" while starting; it was deleted.`
      )
    }
    if (GONE.has(state)) {
      throw new Error(
        `Sandbox ${machine.id} is in state "${machine.state}" and cannot be used.`
      )
    }
    if (rt.now() >= deadline) {
      throw new Error(
        `Sandbox ${machine.id} was not ready after ${Math.round(rt.readyTimeoutMs / 1000)}s (state "${machine.state || 'empty'}"); it was deleted.`
      )
    }
    await rt.sleep(interval)
    interval = Math.min(interval * 2, 2000)
    machine = await client.getMachine(machine.id)
  }
}

/** Deletes a machine, logging instead of throwing. */
export async function deleteQuietly(
  client: SmolfleetClient,
  machineId: string,
  rt: Pick<LifecycleRuntime, 'log'>
): Promise<boolean> {
  try {
    await client.deleteMachine(machineId)
    return true
  } catch (error) {
    rt.log(`Could not delete sandbox ${machineId}: ${(error as Error).message}`)
    return false
  }
}

function toSandbox(identity: LeaseIdentity, machine: MachineRecord): Sandbox {
  return { ...identity, machineId: machine.id, state: machine.state }
}

/** A Crabbox-named machine as a sandbox, or undefined for foreign ones. */
export function asSandbox(machine: MachineRecord): Sandbox | undefined {
  const parsed = parseMachineName(machine.name)
  if (!parsed) return undefined
  return {
    ...parsed,
    name: machine.name,
    machineId: machine.id,
    state: machine.state
  }
}

/**
 * Finds the sandbox a user named by lease id, slug, machine name or
 * machine id. Machines that Crabbox or this action did not name are
 * refused, so a typo cannot reach someone else's machine. Inside a workflow
 * run, the slug a step asked for also finds the sandbox made in this run,
 * whose slug carries a suffix and the run marker.
 */
export async function resolveSandbox(
  client: SmolfleetClient,
  id: string,
  env: NodeJS.ProcessEnv = {}
): Promise<Sandbox> {
  const wanted = id.trim()
  const lower = wanted.toLowerCase()
  if (!lower.startsWith('cbx_') && !lower.startsWith('crabbox-')) {
    try {
      const machine = await client.getMachine(wanted)
      const sandbox = asSandbox(machine)
      if (sandbox) return sandbox
      throw new Error(
        `Machine ${wanted} (name "${machine.name}") was not made by smolvm-action or Crabbox; it is left alone.`
      )
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error
    }
  }
  const all = (await client.listMachines())
    .map(asSandbox)
    .filter((s): s is Sandbox => s !== undefined)
  const slug = normalizeSlug(wanted)
  let matches = all.filter(
    (s) => s.leaseId === lower || s.name === lower || s.slug === slug
  )
  const marker = runMarker(env, false)
  if (matches.length === 0 && marker && slug) {
    const ours = new RegExp(`^${slug}-[0-9a-f]{4}-${marker}(-keep)?$`)
    matches = all.filter((s) => ours.test(s.slug))
  }
  if (matches.length === 1) return matches[0] as Sandbox
  if (matches.length === 0) {
    throw new NotFoundError(
      `No sandbox matches "${wanted}" (looked for a lease id, slug, machine name or machine id). Pass the lease-id or slug output of the step that made it.`
    )
  }
  throw new Error(
    `"${wanted}" matches ${matches.length} sandboxes (${matches.map((m) => m.leaseId).join(', ')}); use a lease id.`
  )
}

export class NotFoundError extends Error {
  override name = 'NotFoundError'
}
