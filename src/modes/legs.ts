import * as core from '@actions/core'
import { setOutput } from '../report/report.js'
import type { Context } from '../context.js'
import { toMatrix } from '../fanout/legs.js'

/**
 * Prints the legs of a fan-out as a strategy.matrix value. It calls no API:
 * the legs were read and checked with the other inputs.
 */
export function legsMode(ctx: Context): Promise<void> {
  const legs = ctx.inputs.legs
  for (const leg of legs) {
    const fields = Object.entries(leg.fields)
      .map(([k, v]) => ` ${k}=${String(v)}`)
      .join('')
    core.info(`leg ${leg.index + 1}/${leg.total}: ${leg.name}${fields}`)
  }
  setOutput('legs', JSON.stringify(toMatrix(legs)))
  return Promise.resolve()
}
