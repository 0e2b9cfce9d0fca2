import * as core from '@actions/core'
import { setOutput } from '../report/report.js'
import type { Context } from '../context.js'
import { asSandbox } from '../lifecycle/sandbox.js'
import { RUN_MARKER } from '../lifecycle/names.js'
import type { MachineRecord } from '../smolfleet/types.js'

export interface LeaseEntry {
  leaseId: string
  slug: string
  name: string
  machineId: string
  state: string
  image: string
  cpus: number | undefined
  memoryMb: number | undefined
  createdAt: string | undefined
  runId: string | undefined
  /** Kept on purpose (keep: true): cleanup by run leaves it alone. */
  handedOver: boolean
}

/** Sandboxes named by this action or Crabbox, in the API's order. */
export function toEntries(machines: MachineRecord[]): LeaseEntry[] {
  const entries: LeaseEntry[] = []
  for (const machine of machines) {
    const sandbox = asSandbox(machine)
    if (!sandbox) continue
    const marker = RUN_MARKER.exec(sandbox.slug)
    entries.push({
      leaseId: sandbox.leaseId,
      slug: sandbox.slug,
      name: sandbox.name,
      machineId: sandbox.machineId,
      state: sandbox.state,
      image: machine.source?.reference ?? '',
      cpus: machine.resources?.cpus,
      memoryMb: machine.resources?.memoryMb,
      createdAt: machine.createdAt,
      runId: marker?.[1],
      handedOver: marker?.[3] !== undefined
    })
  }
  return entries
}

export async function listMode(ctx: Context): Promise<void> {
  const entries = toEntries(await ctx.client.listMachines())
  for (const e of entries) {
    core.info(
      `${e.machineId.padEnd(24)} ${e.state.padEnd(10)} lease=${e.leaseId} slug=${e.slug} image=${e.image} created=${e.createdAt ?? '-'}`
    )
  }
  core.info(`${entries.length} sandbox${entries.length === 1 ? '' : 'es'}`)
  setOutput('leases', JSON.stringify(entries))
}
