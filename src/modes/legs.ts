import * as core from '@actions/core'
import { setOutput } from '../report/report.js'
import type { Context } from '../context.js'
import { fanoutSlugPrefix, newFanoutKey, toMatrix } from '../fanout/legs.js'

/**
 * Prints the legs of a fan-out as a strategy.matrix value, and the fan-out's
 * key. It calls no API: the legs were read and checked with the other inputs.
 */
export function legsMode(ctx: Context): Promise<void> {
  const legs = ctx.inputs.legs
  // A fresh key per fan-out, so that its cleanup and its artifacts cannot
  // reach those of another fan-out or job in the same workflow run.
  const key = newFanoutKey()
  core.info(
    `fan-out key ${key}: new sandboxes' slugs start with ${fanoutSlugPrefix(key)}`
  )
  for (const leg of legs) {
    const fields = Object.entries(leg.fields)
      .map(([k, v]) => ` ${k}=${String(v)}`)
      .join('')
    core.info(`leg ${leg.index + 1}/${leg.total}: ${leg.name}${fields}`)
  }
  setOutput('key', key)
  setOutput('legs', JSON.stringify(toMatrix(legs, key)))
  return Promise.resolve()
}
