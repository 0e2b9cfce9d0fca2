import * as core from '@actions/core'
import { randomUUID } from 'node:crypto'
import type { Context } from '../context.js'
import type { Sandbox } from '../lifecycle/sandbox.js'
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

  core.info(`Running the script in ${run.cwd} (timeout ${ctx.inputs.timeoutMinutes} minutes)`)
  try {
    const code = await streamOrExec(ctx, id, guest.run, timeoutSeconds)
    if (code === ALREADY_STARTED) {
      throw new Error('The sandbox refused to start the script a second time; its first result is unknown.')
    }
    return code
  } finally {
    // The variables file is already gone; this removes the script and, if
    // the run never started, the variables too.
    await ctx.cleanupClient
      .exec(id, { command: guest.cleanup, cwd: '/', timeoutSeconds: 30 }, { idempotent: true })
      .catch((error: Error) => core.debug(`cleanup of ${guest.dir} failed: ${error.message}`))
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
  const token = randomUUID()
  process.stdout.write(`::stop-commands::${token}\n`)
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
    process.stdout.write(`\n::${token}::\n`)
  }
}
