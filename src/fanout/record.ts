// Writes a leg's result file when mode run ends, whether it succeeded,
// failed or was cancelled: a failed step ends the job's normal steps, so
// the file must exist before the step does for the upload to find it.

import * as core from '@actions/core'
import { basename } from 'node:path'
import type { Context } from '../context.js'
import { readResultTarget } from '../inputs.js'
import { explain } from '../report/explain.js'
import { outputsSoFar } from '../report/report.js'
import { redact } from '../security/redact.js'
import { writeResultFile } from './files.js'
import { resultFromOutputs } from './result.js'
import type { Outcome } from './result.js'

type ModeFn = (ctx: Context) => Promise<void>

/** Wraps a mode so that it records its result when result-file is set. */
export function recordingResult(mode: ModeFn): ModeFn {
  return async (ctx: Context): Promise<void> => {
    const path = ctx.inputs.resultFile
    if (!path) return mode(ctx)
    let failure: unknown
    let failed = false
    try {
      await mode(ctx)
    } catch (error) {
      failure = error
      failed = true
    }
    const outcome: Outcome = ctx.signal.aborted
      ? 'cancelled'
      : failed
        ? 'failure'
        : 'success'
    // The same text the step fails with, hints included.
    const error = failed ? redact(explain(failure)) : undefined
    await writeLegResult(path, ctx.inputs.leg, ctx.env, outcome, error)
    if (failed) throw failure
  }
}

/**
 * Records a leg whose inputs were refused, so no mode ran. Only result-file
 * and leg are read, leniently; it never throws, as the step fails anyway.
 */
export async function recordInputFailure(
  message: string,
  env: NodeJS.ProcessEnv
): Promise<void> {
  const target = readResultTarget()
  if (!target) return
  await writeLegResult(target.path, target.leg, env, 'failure', message)
}

async function writeLegResult(
  path: string,
  legInput: string | undefined,
  env: NodeJS.ProcessEnv,
  outcome: Outcome,
  error: string | undefined
): Promise<void> {
  const leg = legInput ?? basename(path).replace(/\.json$/i, '')
  const attempt = /^\d+$/.test(env.GITHUB_RUN_ATTEMPT?.trim() ?? '')
    ? Number(env.GITHUB_RUN_ATTEMPT)
    : null
  try {
    const result = resultFromOutputs(
      leg,
      attempt,
      outputsSoFar(),
      outcome,
      error
    )
    await writeResultFile(path, result)
    core.info(`result of leg ${leg} (${outcome}) written to ${path}`)
  } catch (e) {
    const message = `Could not write the result file ${path}: ${(e as Error).message}`
    // The run's own error matters more; the merge reports the leg missing.
    if (error !== undefined) core.warning(message)
    else throw new Error(message)
  }
}
