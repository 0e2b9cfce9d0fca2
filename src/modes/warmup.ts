import * as core from '@actions/core'
import type { Context } from '../context.js'
import {
  setLeaseOutputs,
  setTimingOutputs,
  writeJobSummary,
  writeLeaseOutput
} from '../report/report.js'
import type { LeaseReport } from '../report/report.js'
import { goDuration } from '../report/report.js'
import { newSandbox } from './new-sandbox.js'

/** Creates a sandbox and keeps it until mode stop deletes it. */
export async function warmupMode(ctx: Context): Promise<void> {
  const started = Date.now()
  const sandbox = await core.group('Create sandbox', async () =>
    newSandbox(ctx, true)
  )
  const ttl = ctx.inputs.ttlMinutes
  const lease: LeaseReport = {
    leaseId: sandbox.leaseId,
    slug: sandbox.slug,
    machineId: sandbox.machineId,
    reused: false,
    kept: true,
    cleanup: ttl
      ? `kept until stopped, or deleted by the server after ${ttl} minutes`
      : 'kept until stopped'
  }
  const totalMs = Date.now() - started
  core.info(`warmup complete total=${goDuration(totalMs)}`)
  setLeaseOutputs(lease)
  setTimingOutputs(
    { syncMs: undefined, commandMs: undefined, totalMs },
    undefined
  )
  if (ctx.inputs.leaseOutput)
    await writeLeaseOutput(ctx.inputs.leaseOutput, lease)
  await writeJobSummary({
    title: 'smolvm warmup',
    lease,
    timings: { syncMs: undefined, commandMs: undefined, totalMs },
    exitCode: undefined,
    sync: undefined,
    error: undefined
  })
}
