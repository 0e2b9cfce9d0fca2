import * as core from '@actions/core'
import { randomUUID } from 'node:crypto'
import type { Context } from '../context.js'
import type { Sandbox } from '../lifecycle/sandbox.js'
import { ApiError, TransportError } from '../smolfleet/errors.js'
import { TRANSIENT_STATUSES } from '../smolfleet/retry.js'
import { ALREADY_STARTED, PREPARED, buildGuestRun } from './guest-script.js'

export interface ScriptRun {
  script: string
  env: Record<string, string>
  cwd: string
}

/**
 * Runs the user's script like a `run:` step with `shell: sh` and returns its
 * exit code. Output is streamed as it comes where the API can stream.
 */
export async function runScript(
  ctx: Context,
  sandbox: Sandbox,
  run: ScriptRun
): Promise<number> {
  const guest = buildGuestRun(run.script, run.env, run.cwd)
  const timeoutSeconds = ctx.inputs.timeoutMinutes * 60
  const id = sandbox.machineId

  // Writing the two files may be repeated safely.
  const prepared = await ctx.client.exec(
    id,
    { command: guest.prepare, cwd: '/' },
    { idempotent: true }
  )
  if (prepared.exitCode !== 0 || !prepared.stdout.includes(PREPARED)) {
    throw new Error(
      `Could not write the script into the sandbox (exit ${prepared.exitCode}): ${prepared.stderr.trim().slice(0, 500)}`
    )
  }

  core.info(
    `Running the script in ${run.cwd} (timeout ${ctx.inputs.timeoutMinutes} minutes)`
  )
  const deadline = Date.now() + timeoutSeconds * 1000
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const code = await streamOrExec(ctx, id, guest.run, timeoutSeconds)
        if (code !== ALREADY_STARTED || attempt === 1) return code
        // A re-sent run found the first one started after all: wait for it.
        const outcome = await recover(
          ctx,
          id,
          guest.probe,
          deadline,
          new Error('The first run call was delivered late')
        )
        if (outcome === 'not-started')
          throw new Error(
            'The sandbox refused to start the script a second time; its first result is unknown.'
          )
        return outcome
      } catch (error) {
        if (ctx.signal.aborted || !mayHaveRun(error) || attempt >= 3)
          throw error
        // The run call failed in a way that leaves open whether the script
        // started. The guest knows: re-send only if it never started,
        // otherwise wait for the exit code it writes down.
        const outcome = await recover(
          ctx,
          id,
          guest.probe,
          deadline,
          error as Error
        )
        if (outcome !== 'not-started') return outcome
        core.info(
          `${(error as Error).message}; the script had not started, so it is started again.`
        )
      }
    }
  } finally {
    // The variables file is already gone; this removes the script and, if
    // the run never started, the variables too.
    await ctx.cleanupClient
      .exec(
        id,
        { command: guest.cleanup, cwd: '/', timeoutSeconds: 30 },
        { idempotent: true }
      )
      .catch((error: unknown) =>
        core.debug(`cleanup of ${guest.dir} failed: ${String(error)}`)
      )
  }
}

function mayHaveRun(error: unknown): boolean {
  return (
    error instanceof TransportError ||
    (error instanceof ApiError && TRANSIENT_STATUSES.has(error.status))
  )
}

async function recover(
  ctx: Context,
  machineId: string,
  probe: string,
  deadline: number,
  cause: Error
): Promise<number | 'not-started'> {
  for (let wait = 1000; ; wait = Math.min(wait * 2, 15_000)) {
    const answer = await ctx.client.exec(
      machineId,
      { command: probe, cwd: '/', timeoutSeconds: 30 },
      { idempotent: true }
    )
    const rc = /^exit (\d+)$/m.exec(answer.stdout)
    if (rc) {
      core.warning(
        `${cause.message}. The script ran on in the sandbox and exited with ${rc[1] as string}; output after the connection dropped is not shown.`
      )
      return Number(rc[1])
    }
    if (!answer.stdout.includes('started')) return 'not-started'
    if (Date.now() > deadline) {
      throw new Error(
        `${cause.message}. The script started but did not finish within timeout-minutes.`
      )
    }
    await new Promise((resolve) => setTimeout(resolve, wait))
  }
}

async function streamOrExec(
  ctx: Context,
  machineId: string,
  command: string,
  timeoutSeconds: number
): Promise<number> {
  // The guest's output must not be able to issue workflow commands to the
  // runner (set outputs, add masks, ...), so commands are paused around it.
  pausedToken = randomUUID()
  process.stdout.write(`::stop-commands::${pausedToken}\n`)
  try {
    const streamed = await ctx.client.execStream(
      machineId,
      { command, cwd: '/', timeoutSeconds },
      {
        stdout: (text) => process.stdout.write(text),
        stderr: (text) => process.stdout.write(text)
      }
    )
    if (streamed !== undefined) return streamed
    const result = await ctx.client.exec(
      machineId,
      { command, cwd: '/', timeoutSeconds },
      { idempotent: false }
    )
    process.stdout.write(result.stdout)
    process.stdout.write(result.stderr)
    return result.exitCode
  } finally {
    resumeWorkflowCommands()
  }
}

let pausedToken: string | undefined

/**
 * Ends the pause of workflow commands around the guest's output, so that
 * our own warnings and errors (e.g. on cancellation) reach the runner.
 */
export function resumeWorkflowCommands(): void {
  if (pausedToken === undefined) return
  process.stdout.write(`\n::${pausedToken}::\n`)
  pausedToken = undefined
}
