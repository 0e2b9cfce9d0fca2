import * as core from '@actions/core'
import { readAllowCustomBaseUrl, readApiKey, readBaseUrl } from './inputs.js'
import { cleanupCommand, stopStep } from './report/report.js'
import { redact } from './security/redact.js'
import { SmolfleetClient } from './smolfleet/client.js'
import { loadLease, saveCleanup } from './state.js'
import type { SavedLease } from './state.js'

/**
 * The post step: deletes the sandbox main created and did not keep, when
 * main could not (failure, crash, cancellation). It never fails the job for
 * a sandbox that is already gone, and every call it makes is bounded.
 */
export async function run(): Promise<void> {
  const lease = loadLease()
  if (!lease || lease.cleanup !== 'delete') {
    const why = !lease
      ? 'this step created no sandbox'
      : lease.cleanup === 'keep'
        ? `sandbox ${lease.leaseId} is kept on purpose`
        : `the main step already deleted sandbox ${lease.leaseId}`
    core.info(`Nothing to clean up: ${why}.`)
    return
  }
  const apiKey = readApiKey()
  let client: SmolfleetClient | undefined
  try {
    client = new SmolfleetClient({
      baseUrl: readBaseUrl(),
      apiKey,
      allowCustomBaseUrl: readAllowCustomBaseUrl(),
      controlTimeoutMs: 10_000,
      retry: { attempts: 4, baseMs: 500, maxDelayMs: 4000, budgetMs: 30_000 },
      runtime: { log: (m: string): void => core.info(m) }
    })
    const outcome = await deleteLease(client, lease)
    saveCleanup('done')
    core.info(outcome)
    await summary(`Post step: ${outcome}`)
  } catch (error) {
    const message = redact((error as Error).message)
    core.warning(
      `Could not delete sandbox ${lease.leaseId} (${lease.name}): ${message}. Stop it by hand with: ${cleanupCommand(lease.leaseId)}`
    )
    await summary(
      `Post step could not delete sandbox <code>${lease.leaseId}</code>: ${message}`,
      lease.leaseId
    )
  } finally {
    await client?.close()
  }
}

async function deleteLease(
  client: SmolfleetClient,
  lease: SavedLease
): Promise<string> {
  let machineId = lease.machineId
  if (!machineId) {
    // Main saved the name before the create call but never learned the id
    // (lost answer, cancellation): look the machine up by its name. A create
    // cut off by cancellation may still be under way on the server, so look
    // a few times before concluding that it never happened.
    const found = await findByName(client, lease.name)
    if (!found)
      return `Sandbox ${lease.leaseId} was never created or is already gone.`
    machineId = found.id
  }
  const result = await client.deleteMachine(machineId)
  return result === 'gone'
    ? `Sandbox ${lease.leaseId} (${machineId}) was already gone.`
    : `Deleted sandbox ${lease.leaseId} (${machineId}).`
}

const LOOKUPS = 4
const LOOKUP_GAP_MS = 3000

async function findByName(
  client: SmolfleetClient,
  name: string
): Promise<{ id: string } | undefined> {
  for (let i = 1; ; i++) {
    const found = (await client.listMachines()).find((m) => m.name === name)
    if (found || i >= LOOKUPS) return found
    await new Promise((resolve) => setTimeout(resolve, LOOKUP_GAP_MS))
  }
}

async function summary(text: string, keptLeaseId?: string): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  const s = core.summary.addRaw(text, true)
  if (keptLeaseId) {
    s.addRaw('Stop it with this step:', true).addCodeBlock(
      stopStep(keptLeaseId),
      'yaml'
    )
  }
  await s.write().catch(() => undefined)
}
