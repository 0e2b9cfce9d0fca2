import * as core from '@actions/core'
import { setOutput } from '../report/report.js'
import { lifecycleRuntime } from '../context.js'
import type { Context } from '../context.js'
import { newIdentity } from '../lifecycle/names.js'
import { createSandbox } from '../lifecycle/sandbox.js'
import type { Sandbox } from '../lifecycle/sandbox.js'
import { ApiError, TransportError } from '../smolfleet/errors.js'
import { saveCleanup, saveLease, saveMachineId } from '../state.js'

const REFUSED = new Set([400, 401, 402, 403, 404, 413, 422])

/**
 * Creates a sandbox for warmup or run. Its name is saved to the step's
 * state before the create call: if the answer is lost or the step is
 * cancelled, the post step can still find and delete it by name.
 */
export async function newSandbox(
  ctx: Context,
  keepIntent: boolean
): Promise<Sandbox> {
  const i = ctx.inputs
  const identity = newIdentity(i.slug, ctx.env, i.keep)
  saveLease({ ...identity, machineId: '', cleanup: 'delete' })
  // Whatever happens next, the outputs already say what to stop.
  setOutput('lease-id', identity.leaseId)
  setOutput('slug', identity.slug)

  // A server-side lifetime is the backstop in case both this step and its
  // post step die: ttl-minutes when given; else an hour past the script's
  // timeout for a one-shot sandbox, and a day past it for one that may be
  // kept on failure. Only sandboxes kept on purpose live until stopped.
  const oneShot = !keepIntent && !i.keepOnFailure
  const ttlSeconds = i.ttlMinutes
    ? i.ttlMinutes * 60
    : keepIntent
      ? undefined
      : (i.timeoutMinutes + (oneShot ? 60 : 24 * 60)) * 60

  core.info(
    `provisioning provider=smolvm lease=${identity.leaseId} slug=${identity.slug} name=${identity.name} image=${i.image} cpus=${i.cpus} memory_mb=${i.memoryMb} network=${i.network} keep=${keepIntent}`
  )
  let machineId = ''
  const sandbox = await createSandbox(
    ctx.client,
    identity,
    {
      image: i.image,
      workdir: i.workdir,
      cpus: i.cpus,
      memoryMb: i.memoryMb,
      network: i.network,
      ttlSeconds,
      ephemeral: oneShot
    },
    lifecycleRuntime(ctx, (id) => {
      machineId = id
      saveMachineId(id)
      setOutput('machine-id', id)
    }),
    ctx.cleanupClient
  ).catch((error: unknown) => {
    // A refusal (bad key, quota, invalid request) created nothing, so the
    // post step has nothing to look for.
    const refused = error instanceof ApiError && REFUSED.has(error.status)
    const neverSent = error instanceof TransportError && !error.sent
    if (!machineId && (refused || neverSent)) saveCleanup('done')
    throw error
  })
  core.info(
    `leased ${sandbox.leaseId} slug=${sandbox.slug} provider=smolvm machine=${sandbox.machineId} name=${sandbox.name}`
  )
  if (keepIntent) saveCleanup('keep')
  return sandbox
}
