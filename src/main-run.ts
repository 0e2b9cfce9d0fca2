import * as core from '@actions/core'
import { createContext } from './context.js'
import { getInputs } from './inputs.js'
import type { Mode } from './inputs.js'
import type { Context } from './context.js'
import { recordInputFailure, recordingResult } from './fanout/record.js'
import { legsMode } from './modes/legs.js'
import { listMode } from './modes/list.js'
import { mergeMode } from './modes/merge.js'
import { runMode } from './modes/run.js'
import { statusMode } from './modes/status.js'
import { stopMode } from './modes/stop.js'
import { warmupMode } from './modes/warmup.js'
import { explain } from './report/explain.js'
import { redact } from './security/redact.js'
import { resumeWorkflowCommands } from './run/script.js'

const MODES: Record<Mode, (ctx: Context) => Promise<void>> = {
  warmup: warmupMode,
  // With result-file set, a run writes its leg's result even when it fails.
  run: recordingResult(runMode),
  stop: stopMode,
  status: statusMode,
  list: listMode,
  legs: legsMode,
  merge: mergeMode
}

// After the runner's SIGINT it waits 7.5 s before SIGTERM and kills 2.5 s
// later; main must have cleaned up and exited before that.
const CANCEL_EXIT_MS = 6500

/** The main step: one mode, with cancellation turned into cleanup. */
export async function run(): Promise<void> {
  const controller = new AbortController()
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) return
    resumeWorkflowCommands()
    core.warning(
      `Received ${signal}: cancelling; sandboxes this step created are deleted unless kept.`
    )
    controller.abort(new Error('The step was cancelled.'))
    setTimeout(() => process.exit(1), CANCEL_EXIT_MS).unref()
  }
  // The runner sends SIGINT; SIGHUP has been seen instead (actions/runner#1309).
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(s, onSignal)

  let ctx: Context | undefined
  try {
    const inputs = getInputs()
    ctx = createContext(inputs, controller.signal)
    await MODES[inputs.mode](ctx)
  } catch (error) {
    const message = redact(explain(error))
    // Invalid inputs end the step before any mode runs; a fan-out leg must
    // still leave a result, or the merge would report it missing.
    if (!ctx) await recordInputFailure(message, process.env)
    core.setFailed(message)
  } finally {
    await ctx?.client.close()
    await ctx?.cleanupClient.close()
  }
}
