// What every mode needs: the inputs, a client bound to the step's
// cancellation signal, and a second client for cleanup that cancellation
// cannot stop (but whose calls are short and bounded).

import * as core from '@actions/core'
import { SmolfleetClient } from './smolfleet/client.js'
import type { Inputs } from './inputs.js'
import type { LifecycleRuntime } from './lifecycle/sandbox.js'

export interface Context {
  inputs: Inputs
  client: SmolfleetClient
  cleanupClient: SmolfleetClient
  signal: AbortSignal
  env: NodeJS.ProcessEnv
  /** How long to wait for a new sandbox to become ready. */
  readyTimeoutMs: number
}

export function createContext(
  inputs: Inputs,
  signal: AbortSignal,
  env: NodeJS.ProcessEnv = process.env
): Context {
  const log = (message: string): void => core.info(message)
  const client = new SmolfleetClient({
    baseUrl: inputs.baseUrl,
    apiKey: inputs.apiKey,
    allowCustomBaseUrl: true, // already checked against the rules in inputs
    signal,
    runtime: { log }
  })
  const cleanupClient = new SmolfleetClient({
    baseUrl: inputs.baseUrl,
    apiKey: inputs.apiKey,
    allowCustomBaseUrl: true,
    controlTimeoutMs: 5000,
    retry: { attempts: 3, baseMs: 250, maxDelayMs: 1000, budgetMs: 5000 },
    runtime: { log }
  })
  const readyTimeoutMs = Number(env.SMOLVM_ACTION_READY_TIMEOUT_MS) || 300_000
  return { inputs, client, cleanupClient, signal, env, readyTimeoutMs }
}

export function lifecycleRuntime(
  ctx: Context,
  onMachineId: (id: string) => void
): LifecycleRuntime {
  return {
    now: () => Date.now(),
    sleep: async (ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, ms)
        ctx.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer)
            reject(new Error('The step was cancelled.'))
          },
          { once: true }
        )
      }),
    log: (message) => core.info(message),
    onMachineId,
    readyTimeoutMs: ctx.readyTimeoutMs
  }
}
