import * as core from '@actions/core'
import { setOutput } from '../report/report.js'
import type { Context } from '../context.js'
import { readResultDir } from '../fanout/files.js'
import {
  markdownTable,
  mergeHeadline,
  mergeResults,
  resultsJson
} from '../fanout/merge.js'

/**
 * Merges the legs' result files into one job summary table and the
 * `results` output, and fails when a leg failed or left no result.
 */
export async function mergeMode(ctx: Context): Promise<void> {
  const dir = ctx.inputs.resultsDir
  const { results, problems } = await readResultDir(dir)
  for (const problem of problems) core.warning(problem)
  const merged = mergeResults(ctx.inputs.legs, results)
  if (merged.unexpected.length > 0) {
    core.warning(
      `Results for legs that are not in the legs input were ignored: ${merged.unexpected.join(', ')}. Pass the legs output of mode legs to merge.`
    )
  }
  if (merged.duplicates.length > 0) {
    core.warning(
      `More than one result of the same attempt for ${merged.duplicates.join(', ')}; the last file in path order counts.`
    )
  }

  const headline = mergeHeadline(merged)
  const table = markdownTable(merged)
  core.info(headline)
  core.info(table)
  setOutput('results', resultsJson(merged))
  if (ctx.env.GITHUB_STEP_SUMMARY) {
    await core.summary
      .addHeading('smolvm fan-out', 3)
      // Markdown after an HTML block renders only after a blank line.
      .addRaw(`\n${headline}\n\n${table}`, true)
      .write()
  }

  if (merged.failed.length > 0) {
    throw new Error(
      `${merged.failed.length} of ${merged.legs.length} legs failed or left no result: ${merged.failed.join(', ')}.`
    )
  }
}
