import * as core from '@actions/core'
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import type { Context } from '../context.js'
import { resolveSandbox } from '../lifecycle/sandbox.js'
import type { Sandbox } from '../lifecycle/sandbox.js'
import {
  cleanupCommand,
  setLeaseOutputs,
  setTimingOutputs,
  summaryLine,
  writeJobSummary,
  writeLeaseOutput
} from '../report/report.js'
import type { LeaseReport, Timings } from '../report/report.js'
import { forwardedEnv } from '../run/env.js'
import { runScript } from '../run/script.js'
import { checkRunSize } from '../run/guest-script.js'
import { saveCleanup } from '../state.js'
import {
  checkSyncRoot,
  checkSyncSize,
  listSyncFiles,
  syncToGuest
} from '../sync/index.js'
import type { FileList, SyncReport } from '../sync/index.js'
import { newSandbox } from './new-sandbox.js'
import { guestExec } from '../run/exec.js'

export async function runMode(ctx: Context): Promise<void> {
  const i = ctx.inputs
  const started = Date.now()

  // Everything local is checked before the first request, so a bad path or
  // an oversized tree creates nothing.
  let files: FileList | undefined
  if (i.sync) {
    files = await core.group('Prepare sync', async () => {
      const root = await checkSyncRoot(i.path)
      const list = await listSyncFiles(root, i.exclude)
      checkSyncSize(list, i.forceSyncLarge, syncLog, ctx.env)
      return list
    })
  }
  const env = forwardedEnv(i.envForward, ctx.env)
  if (!i.syncOnly) checkRunSize(i.script, env)

  const reused = i.ids.length === 1
  const sandbox: Sandbox = await core.group(
    reused ? 'Find sandbox' : 'Create sandbox',
    async () =>
      reused ? reuse(ctx, i.ids[0] as string) : newSandbox(ctx, i.keep)
  )
  const lease: LeaseReport = {
    leaseId: sandbox.leaseId,
    slug: sandbox.slug,
    machineId: sandbox.machineId,
    reused,
    kept: true,
    cleanup: 'pending'
  }
  setLeaseOutputs(lease)

  const timings: Timings = {
    syncMs: undefined,
    commandMs: undefined,
    totalMs: 0
  }
  let exitCode: number | undefined
  let failure: Error | undefined
  let synced: SyncReport | undefined
  const exec = guestExec(ctx.client, sandbox.machineId)
  try {
    if (files) {
      const list = files
      const t0 = Date.now()
      try {
        synced = await core.group('Sync', async () =>
          syncToGuest({ list, workdir: i.workdir, exec, log: syncLog })
        )
      } finally {
        timings.syncMs = Date.now() - t0
      }
      core.info(`sync complete in ${timings.syncMs}ms`)
    }
    if (i.syncOnly) {
      core.info(`synced ${i.workdir}`)
    } else {
      const cwd = i.workingDirectory
        ? posix.join(i.workdir, i.workingDirectory)
        : i.workdir
      const t0 = Date.now()
      exitCode = await core.group('Run', async () =>
        runScript(ctx, sandbox, {
          script: i.script,
          env: { ...env, ...leaseEnv(sandbox) },
          cwd
        })
      )
      timings.commandMs = Date.now() - t0
    }
  } catch (error) {
    failure = error as Error
  }

  const failed = failure !== undefined || (exitCode ?? 0) !== 0
  await core.group('Cleanup', async () => finish(ctx, sandbox, lease, failed))
  timings.totalMs = Date.now() - started

  core.info(summaryLine(timings, exitCode))
  setLeaseOutputs(lease)
  setTimingOutputs(timings, exitCode)
  if (i.leaseOutput) await writeLeaseOutput(i.leaseOutput, lease)
  await writeJobSummary({
    title: 'smolvm run',
    lease,
    timings,
    exitCode,
    sync: synced
      ? `${synced.files} files, ${synced.bytes} bytes in ${synced.chunks} chunks${synced.deleted ? `, ${synced.deleted} deleted` : ''}`
      : undefined,
    error: failure?.message
  })

  if (failure) throw failure
  if (exitCode !== undefined && exitCode !== 0) {
    const timedOut =
      exitCode === 124 && (timings.commandMs ?? 0) >= i.timeoutMinutes * 60_000
    throw new Error(exitMessage(exitCode, timedOut, i.timeoutMinutes))
  }
}

function exitMessage(
  code: number,
  timedOut: boolean,
  timeoutMinutes: number
): string {
  if (timedOut) {
    return `The script timed out after ${timeoutMinutes} minute${timeoutMinutes === 1 ? '' : 's'} (timeout-minutes) and was stopped (exit code 124).`
  }
  switch (code) {
    case 127:
      return 'The script exited with code 127: a command was not found in the sandbox. Install it in the script first (for example apk add --no-cache <package>) or use another image.'
    default:
      return `The script exited with code ${code}.`
  }
}

async function reuse(ctx: Context, id: string): Promise<Sandbox> {
  const sandbox = await resolveSandbox(ctx.client, id, ctx.env)
  core.info(
    `reusing ${sandbox.leaseId} slug=${sandbox.slug} machine=${sandbox.machineId} state=${sandbox.state}`
  )
  return sandbox
}

/** Deletes a sandbox this step created unless it is to be kept. */
async function finish(
  ctx: Context,
  sandbox: Sandbox,
  lease: LeaseReport,
  failed: boolean
): Promise<void> {
  const i = ctx.inputs
  if (lease.reused) {
    lease.cleanup = 'reused: left running'
    core.info(`Left reused sandbox ${sandbox.leaseId} running.`)
    return
  }
  // A cancelled run did not fail on its own: keep-on-failure is for
  // debugging a failure, not for keeping what a cancellation interrupted.
  const keepForFailure = failed && i.keepOnFailure && !ctx.signal.aborted
  if (i.keep || keepForFailure) {
    saveCleanup('keep')
    const stop = `stop it with mode: stop and id: ${sandbox.leaseId}, or ${cleanupCommand(sandbox.leaseId)}`
    if (i.keep) {
      lease.cleanup = 'kept (keep: true)'
      core.notice(
        `Sandbox ${sandbox.leaseId} (slug ${sandbox.slug}) is kept (keep: true); ${stop}.`
      )
    } else {
      lease.cleanup = 'kept because the run failed (keep-on-failure)'
      core.warning(
        `keep-on-failure: kept sandbox ${sandbox.leaseId} (slug ${sandbox.slug}) for debugging; ${stop}.`
      )
    }
    return
  }
  try {
    const result = await ctx.cleanupClient.deleteMachine(sandbox.machineId)
    saveCleanup('done')
    lease.kept = false
    lease.cleanup = result === 'gone' ? 'already gone' : 'deleted'
    core.info(`released lease=${sandbox.leaseId} machine=${sandbox.machineId}`)
  } catch (error) {
    // The post step tries again; the state still says "delete".
    lease.cleanup = `delete failed, the post step retries: ${(error as Error).message}`
    core.warning(
      `Could not delete sandbox ${sandbox.machineId} yet: ${(error as Error).message}. The post step tries again.`
    )
  }
}

/** Values the guest learns about its own lease, as Crabbox forwards them. */
function leaseEnv(sandbox: Sandbox): Record<string, string> {
  return {
    CRABBOX_LEASE_ID: sandbox.leaseId,
    CRABBOX_SLUG: sandbox.slug,
    CRABBOX_RUN_ID: `run_${randomBytes(6).toString('hex')}`
  }
}

const syncLog = {
  info: (m: string): void => core.info(m),
  warning: (m: string): void => core.warning(m),
  debug: (m: string): void => core.debug(m)
}
