// What a run tells the user: step outputs, the one-line summary Crabbox
// prints, the lease-output file and the job summary.

import * as core from '@actions/core'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

const written: Record<string, string> = {}

/**
 * Sets a step output and remembers it, so that a leg's result file says
 * exactly what the step's outputs say. Every output goes through here.
 */
export function setOutput(name: string, value: string): void {
  written[name] = value
  core.setOutput(name, value)
}

/** The outputs this step has set so far. */
export function outputsSoFar(): Record<string, string> {
  return { ...written }
}

export interface LeaseReport {
  leaseId: string
  slug: string
  machineId: string
  reused: boolean
  kept: boolean
  /** What happened to the sandbox at the end of the step. */
  cleanup: string
}

export interface Timings {
  syncMs: number | undefined
  commandMs: number | undefined
  totalMs: number
}

/** The Crabbox CLI command that deletes a sandbox. */
export function cleanupCommand(leaseId: string): string {
  return `crabbox stop --provider smolvm --id '${leaseId}'`
}

/** Go's time.Duration text, rounded to milliseconds, as Crabbox prints. */
export function goDuration(ms: number): string {
  const total = Math.round(ms)
  if (total === 0) return '0s'
  if (total < 1000) return `${total}ms`
  const h = Math.floor(total / 3_600_000)
  const m = Math.floor((total % 3_600_000) / 60_000)
  const s = ((total % 60_000) / 1000).toFixed(3).replace(/\.?0+$/, '')
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`
}

export function summaryLine(t: Timings, exitCode: number | undefined): string {
  const sync =
    t.syncMs === undefined
      ? 'sync_skipped=true'
      : `sync=${goDuration(t.syncMs)}`
  const command = `command=${goDuration(t.commandMs ?? 0)}`
  const exit = exitCode === undefined ? '' : ` exit=${exitCode}`
  return `smolvm run summary ${sync} ${command} total=${goDuration(t.totalMs)}${exit}`
}

export function setLeaseOutputs(lease: LeaseReport): void {
  setOutput('lease-id', lease.leaseId)
  setOutput('slug', lease.slug)
  setOutput('machine-id', lease.machineId)
  setOutput('reused', String(lease.reused))
  setOutput('kept', String(lease.kept))
  setOutput('cleanup-command', cleanupCommand(lease.leaseId))
}

export function setTimingOutputs(
  t: Timings,
  exitCode: number | undefined
): void {
  if (exitCode !== undefined) setOutput('exit-code', String(exitCode))
  if (t.syncMs !== undefined) setOutput('sync-ms', String(Math.round(t.syncMs)))
  if (t.commandMs !== undefined) {
    setOutput('command-ms', String(Math.round(t.commandMs)))
  }
  setOutput('total-ms', String(Math.round(t.totalMs)))
}

/** Crabbox's lease-output fields, plus the machine id. */
export async function writeLeaseOutput(
  path: string,
  lease: LeaseReport
): Promise<void> {
  const body = {
    provider: 'smolvm',
    leaseId: lease.leaseId,
    ...(lease.slug ? { slug: lease.slug } : {}),
    reused: lease.reused,
    kept: lease.kept,
    cleanupCommand: cleanupCommand(lease.leaseId),
    machineId: lease.machineId
  }
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644 })
}

/** A YAML step that stops the sandbox, for the summary and warnings. */
export function stopStep(leaseId: string): string {
  return [
    '- uses: crabbox/smolvm-action@v1',
    '  with:',
    '    mode: stop',
    `    id: ${leaseId}`,
    '    api-key: ${{ secrets.SMOLMACHINES_API_KEY }}'
  ].join('\n')
}

export interface RunSummary {
  title: string
  lease: LeaseReport | undefined
  timings: Timings | undefined
  exitCode: number | undefined
  sync: string | undefined
  error: string | undefined
}

export async function writeJobSummary(s: RunSummary): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  const rows: [string, string][] = []
  if (s.lease) {
    rows.push(['Lease', `<code>${s.lease.leaseId}</code>`])
    rows.push(['Slug', `<code>${s.lease.slug}</code>`])
    rows.push(['Machine', `<code>${s.lease.machineId || 'not created'}</code>`])
    rows.push(['Reused', s.lease.reused ? 'yes' : 'no'])
  }
  if (s.exitCode !== undefined) rows.push(['Exit code', String(s.exitCode)])
  if (s.sync) rows.push(['Sync', s.sync])
  if (s.timings) {
    if (s.timings.syncMs !== undefined)
      rows.push(['Sync time', goDuration(s.timings.syncMs)])
    if (s.timings.commandMs !== undefined) {
      rows.push(['Command time', goDuration(s.timings.commandMs)])
    }
    rows.push(['Total time', goDuration(s.timings.totalMs)])
  }
  if (s.lease) rows.push(['Cleanup', s.lease.cleanup])
  if (s.error) rows.push(['Error', s.error])
  const summary = core.summary.addHeading(s.title, 3).addTable([
    [
      { data: 'Field', header: true },
      { data: 'Value', header: true }
    ],
    ...rows.map(([k, v]) => [k, v])
  ])
  if (s.lease?.kept) {
    summary
      .addRaw('The sandbox is still running. Stop it with this step:', true)
      .addCodeBlock(stopStep(s.lease.leaseId), 'yaml')
      .addRaw(
        `or from a shell: <code>${cleanupCommand(s.lease.leaseId)}</code>`,
        true
      )
  }
  await summary.write()
}
