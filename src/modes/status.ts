import * as core from '@actions/core'
import type { Context } from '../context.js'
import { isReady, resolveSandbox } from '../lifecycle/sandbox.js'
import { setLeaseOutputs, setOutput } from '../report/report.js'

/** Reports the state of one sandbox. */
export async function statusMode(ctx: Context): Promise<void> {
  const sandbox = await resolveSandbox(
    ctx.client,
    ctx.inputs.ids[0] as string,
    ctx.env
  )
  const ready = isReady(sandbox.state)
  core.info(
    `${sandbox.leaseId} slug=${sandbox.slug} provider=smolvm machine=${sandbox.machineId} state=${sandbox.state} ready=${ready}`
  )
  setLeaseOutputs({ ...sandbox, reused: true, kept: true, cleanup: '' })
  setOutput('state', sandbox.state)
}
