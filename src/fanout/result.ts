// One leg's result file: what its run step ended with, in the same values
// as the step's outputs. Matrix job outputs keep only one leg's values, so
// each leg uploads this file and a final job merges them.

import { z } from 'zod'

export type Outcome = 'success' | 'failure' | 'cancelled'

export interface LegResult {
  leg: string
  /** The workflow run attempt; a re-run's result replaces an earlier one. */
  attempt: number | null
  leaseId: string | null
  slug: string | null
  exitCode: number | null
  syncMs: number | null
  commandMs: number | null
  /** Whether the sandbox was still running when the step ended. */
  kept: boolean | null
  outcome: Outcome
  /** Why the step failed, when it failed for another reason than the exit code. */
  error: string | null
}

const RESULT = z.object({
  leg: z.string().min(1),
  attempt: z.number().int().positive().nullable().optional(),
  leaseId: z.string().nullable(),
  slug: z.string().nullable(),
  exitCode: z.number().int().nullable(),
  syncMs: z.number().nullable(),
  commandMs: z.number().nullable(),
  kept: z.boolean().nullable(),
  outcome: z.enum(['success', 'failure', 'cancelled']),
  error: z.string().nullable().optional()
})

/**
 * Builds a leg's result from its step outputs (name to value). A lease
 * whose machine was never created (the create call was refused) is left
 * out: its id would name nothing anyone could find.
 */
export function resultFromOutputs(
  leg: string,
  attempt: number | null,
  outputs: Record<string, string>,
  outcome: Outcome,
  error: string | undefined
): LegResult {
  const text = (name: string): string | null => outputs[name] || null
  const number = (name: string): number | null => {
    const value = outputs[name]
    return value !== undefined && /^-?\d+$/.test(value) ? Number(value) : null
  }
  const kept = outputs.kept
  const created = Boolean(outputs['machine-id'])
  return {
    leg,
    attempt,
    leaseId: created ? text('lease-id') : null,
    slug: created ? text('slug') : null,
    exitCode: number('exit-code'),
    syncMs: number('sync-ms'),
    commandMs: number('command-ms'),
    kept: kept === 'true' ? true : kept === 'false' ? false : null,
    outcome,
    error: error ?? null
  }
}

export function formatResult(result: LegResult): string {
  return `${JSON.stringify(result, null, 2)}\n`
}

/** Parses a result file; the message names the file and what is wrong. */
export function parseResult(text: string, source: string): LegResult {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new Error(
      `Result file ${source} is not JSON (${(error as Error).message}).`
    )
  }
  const parsed = RESULT.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue?.path.join('.') || 'the top level'
    throw new Error(
      `Result file ${source} is not a leg result: ${field}: ${issue?.message ?? 'invalid'}.`
    )
  }
  return {
    ...parsed.data,
    attempt: parsed.data.attempt ?? null,
    error: parsed.data.error ?? null
  }
}
