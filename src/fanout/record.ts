// Writes a leg's result file when mode run ends, whether it succeeded,
// failed or was cancelled: a failed step ends the job's normal steps, so
// the file must exist before the step does for the upload to find it.

import * as core from '@actions/core'
import { basename } from 'node:path'
import type { Context } from '../context.js'
import { redact } from '../security/redact.js'
import { writeResultFile } from './files.js'
import { outputsSoFar } from '../report/report.js'
import { resultFromOutputs } from './result.js'
import type { Outcome } from './result.js'

type ModeFn = (ctx: Context) => Promise<void>

/** Wraps a mode so that it records its result when result-file is set. */
export function recordingResult(mode: ModeFn): ModeFn {
  return async (ctx: Context): Promise<void> => {
    const path = ctx.inputs.resultFile
    if (!path) return mode(ctx)
    let failure: Error | undefined
    try {
      await mode(ctx)
    } catch (error) {
      failure = error as Error
    }
    const outcome: Outcome = ctx.signal.aborted
      ? 'cancelled'
      : failure
        ? 'failure'
        : 'success'
    const leg = ctx.inputs.leg ?? basename(path).replace(/\.json$/i, '')
    try {
      const result = resultFromOutputs(
        leg,
        outputsSoFar(),
        outcome,
        failure && redact(failure.message)
      )
      await writeResultFile(path, result)
      core.info(`result of leg ${leg} (${outcome}) written to ${path}`)
    } catch (error) {
      const message = `Could not write the result file ${path}: ${(error as Error).message}`
      // The run's own error matters more; the merge reports the leg missing.
      if (failure) core.warning(message)
      else throw new Error(message)
    }
    if (failure) throw failure
  }
}
