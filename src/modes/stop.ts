import * as core from '@actions/core'
import { LEASE_ID, MACHINE_NAME } from '../lifecycle/names.js'
import { setOutput } from '../report/report.js'
import type { Context } from '../context.js'
import { NotFoundError, resolveSandbox } from '../lifecycle/sandbox.js'
import type { Sandbox } from '../lifecycle/sandbox.js'
import { toEntries } from './list.js'
import type { LeaseEntry } from './list.js'
import { RUN_MARKER } from '../lifecycle/names.js'
import type { StopSelection } from '../inputs.js'

type Target = Pick<Sandbox, 'leaseId' | 'machineId' | 'slug'> & {
  createdAt?: string
}

/**
 * Deletes the sandboxes named by id, or those selected by workflow run
 * and age. A sandbox that is already gone counts as stopped.
 */
export async function stopMode(ctx: Context): Promise<void> {
  const targets: Target[] = ctx.inputs.stopSelection
    ? await select(ctx)
    : await named(ctx)
  const stopped: string[] = []
  const failed: string[] = []
  const rows: string[][] = []
  for (const target of targets) {
    const row = [target.leaseId, target.slug, target.createdAt ?? '']
    rows.push(row)
    if (ctx.inputs.dryRun) {
      core.info(
        `would stop lease=${target.leaseId} machine=${target.machineId} slug=${target.slug}`
      )
      stopped.push(target.leaseId)
      row.push('would stop')
      continue
    }
    try {
      const result = await ctx.client.deleteMachine(target.machineId)
      core.info(
        result === 'gone'
          ? `lease=${target.leaseId} machine=${target.machineId} was already gone`
          : `released lease=${target.leaseId} machine=${target.machineId}`
      )
      stopped.push(target.leaseId)
      row.push(result === 'gone' ? 'already gone' : 'stopped')
    } catch (error) {
      core.error(
        `Could not stop ${target.leaseId} (${target.machineId}): ${(error as Error).message}`
      )
      failed.push(target.leaseId)
      row.push('failed')
    }
  }
  setOutput('leases', JSON.stringify(stopped))
  // The sweeper and the cleanup job report here what they deleted.
  const summary = core.summary
    .addHeading(ctx.inputs.dryRun ? 'smolvm stop (dry run)' : 'smolvm stop', 3)
    .addRaw(
      `${ctx.inputs.dryRun ? 'Would stop' : 'Stopped'} ${stopped.length} sandbox(es)${failed.length > 0 ? `, ${failed.length} failed` : ''}.`,
      true
    )
  if (rows.length > 0) {
    summary.addTable([
      ['Lease', 'Slug', 'Created', 'Result'].map((data) => ({
        data,
        header: true
      })),
      ...rows
    ])
  }
  await summary.write().catch(() => undefined)
  if (failed.length > 0) {
    throw new Error(
      `Could not stop ${failed.length} sandbox(es): ${failed.join(', ')}; run mode stop again with these ids.`
    )
  }
}

async function named(
  ctx: Context
): Promise<Pick<Sandbox, 'leaseId' | 'machineId' | 'slug'>[]> {
  const out: Sandbox[] = []
  for (const id of ctx.inputs.ids) {
    try {
      out.push(await resolveSandbox(ctx.client, id, ctx.env))
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error
      // A lease id or machine name we made is unique: not found means
      // gone. A slug or anything else may be a typo that leaves a sandbox
      // running, so that gets a warning.
      const lower = id.trim().toLowerCase()
      if (LEASE_ID.test(lower) || MACHINE_NAME.test(lower)) {
        core.info(`${id}: no such sandbox; it is already gone.`)
      } else {
        core.warning(`${error.message} Nothing was stopped for it.`)
      }
    }
  }
  return out
}

/**
 * Sandboxes matching stop-run, older-than and slug-prefix. Only sandboxes
 * made in a workflow run (their slug carries the run marker) are ever
 * selected, so that a sweep cannot reach a developer's Crabbox lease; and a
 * selection without stop-run or older-than selects nothing rather than
 * everything.
 */
export function selectEntries(
  entries: LeaseEntry[],
  selection: Partial<StopSelection>,
  now: number
): LeaseEntry[] {
  const { runId, olderThanMs, slugPrefix } = selection
  if (runId === undefined && olderThanMs === undefined) return []
  return entries.filter((e) => {
    if (e.runId === undefined) return false
    if (runId !== undefined && (e.runId !== runId || e.handedOver)) return false
    if (olderThanMs !== undefined) {
      const created = e.createdAt ? Date.parse(e.createdAt) : NaN
      if (Number.isNaN(created) || now - created < olderThanMs) return false
    }
    // The prefix applies to the part the step asked for, before the
    // collision suffix and run marker.
    if (slugPrefix && !e.slug.replace(RUN_MARKER, '').startsWith(slugPrefix))
      return false
    return true
  })
}

async function select(ctx: Context): Promise<LeaseEntry[]> {
  const sel = ctx.inputs.stopSelection
  if (!sel) return []
  const entries = toEntries(await ctx.client.listMachines())
  const chosen = selectEntries(entries, sel, Date.now())
  core.info(
    `${chosen.length} of ${entries.length} sandboxes match the selection.`
  )
  return chosen
}
