// Merges the legs' result files into one table and one JSON array. The
// expected legs come from the same list the matrix was made from: a leg
// without a result (cancelled, or its runner died) counts as failed.

import { goDuration } from '../report/report.js'
import type { Leg } from './legs.js'
import type { LegResult, Outcome } from './result.js'

export type MergedOutcome = Outcome | 'missing'

export interface MergedLeg extends Omit<LegResult, 'outcome'> {
  index: number
  outcome: MergedOutcome
  failed: boolean
}

export interface Merged {
  legs: MergedLeg[]
  /** Names of the legs that failed, were cancelled or left no result. */
  failed: string[]
  /** Results for legs that are not in the expected list. */
  unexpected: string[]
  /** Legs with more than one result of one attempt; the last one read counts. */
  duplicates: string[]
}

/**
 * Merges the results with the expected legs. "Re-run failed jobs" leaves
 * the earlier attempt's result next to the new one, so per leg the highest
 * attempt counts; results without an attempt count as attempt 0.
 */
export function mergeResults(expected: Leg[], results: LegResult[]): Merged {
  const byName = new Map<string, LegResult>()
  const duplicates = new Set<string>()
  for (const result of results) {
    const earlier = byName.get(result.leg)
    const attempt = result.attempt ?? 0
    const earlierAttempt = earlier?.attempt ?? 0
    if (earlier && attempt < earlierAttempt) continue
    if (earlier && attempt === earlierAttempt) duplicates.add(result.leg)
    byName.set(result.leg, result)
  }
  const known = new Set(expected.map((l) => l.name))
  const legs = expected.map((leg): MergedLeg => {
    const r = byName.get(leg.name)
    if (!r) {
      return {
        leg: leg.name,
        attempt: null,
        index: leg.index,
        leaseId: null,
        slug: null,
        exitCode: null,
        syncMs: null,
        commandMs: null,
        kept: null,
        outcome: 'missing',
        error:
          'No result file: the leg was cancelled, skipped or its runner stopped.',
        failed: true
      }
    }
    const failed =
      r.outcome !== 'success' || (r.exitCode !== null && r.exitCode !== 0)
    return { ...r, index: leg.index, failed }
  })
  return {
    legs,
    failed: legs.filter((l) => l.failed).map((l) => l.leg),
    unexpected: [...byName.keys()].filter((name) => !known.has(name)),
    duplicates: [...duplicates]
  }
}

/** One line such as "6 legs: 2 succeeded, 2 failed, 1 cancelled, 1 missing". */
export function mergeHeadline(merged: Merged): string {
  const count = (o: MergedOutcome): number =>
    merged.legs.filter((l) => l.outcome === o).length
  const ok = merged.legs.length - merged.failed.length
  const cancelled = count('cancelled')
  const missing = count('missing')
  const parts = [
    `${ok} succeeded`,
    `${merged.failed.length - cancelled - missing} failed`
  ]
  if (cancelled > 0) parts.push(`${cancelled} cancelled`)
  if (missing > 0) parts.push(`${missing} missing`)
  const n = merged.legs.length
  return `${n} leg${n === 1 ? '' : 's'}: ${parts.join(', ')}`
}

const cell = (text: string): string =>
  text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ')

const ms = (value: number | null): string =>
  value === null ? '' : goDuration(value)

const row = (cells: string[]): string => `| ${cells.join(' | ')} |`

/** The merged table in GitHub markdown, then the errors of failed legs. */
export function markdownTable(merged: Merged): string {
  const rows = merged.legs.map((l) => {
    const sandbox = l.kept === null ? '' : l.kept ? 'kept' : 'deleted'
    const lease = l.leaseId ? `\`${l.leaseId}\`` : ''
    const outcome = l.failed ? `**${l.outcome}**` : l.outcome
    const exit = l.exitCode === null ? '' : String(l.exitCode)
    return row([
      cell(l.leg),
      lease,
      exit,
      ms(l.syncMs),
      ms(l.commandMs),
      outcome,
      sandbox
    ])
  })
  const header = [
    'Leg',
    'Lease',
    'Exit code',
    'Sync',
    'Command',
    'Outcome',
    'Sandbox'
  ]
  const lines = [row(header), row(header.map(() => '---')), ...rows]
  const errors = merged.legs.filter((l) => l.error)
  if (errors.length > 0) {
    lines.push(
      '',
      ...errors.map((l) => `- ${cell(l.leg)}: ${cell(l.error ?? '')}`)
    )
  }
  return `${lines.join('\n')}\n`
}

/** The JSON array of the `results` output, in the legs' order. */
export function resultsJson(merged: Merged): string {
  return JSON.stringify(merged.legs)
}
