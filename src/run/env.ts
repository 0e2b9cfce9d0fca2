import * as core from '@actions/core'
import { looksSecret, registerSecret } from '../security/redact.js'

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const MIN_MASKED = 4

/**
 * The variables named by env-forward (NAME or PREFIX*), with their values
 * from the runner. Values of secret-looking names are masked in the log.
 */
export function forwardedEnv(
  patterns: string[],
  env: NodeJS.ProcessEnv
): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !NAME.test(name)) continue
    const wanted = patterns.some((p) =>
      p.endsWith('*')
        ? p.length > 1 && name.startsWith(p.slice(0, -1))
        : p === name
    )
    if (wanted) out[name] = value
  }
  const entries = Object.keys(out)
    .sort()
    .map((name) => {
      const value = out[name] as string
      if (!looksSecret(name)) return `${name}=${value ? 'set' : 'empty'}`
      // Masking a very short value would blank out every occurrence of it
      // in the log (a "1" everywhere), so those are left alone, with a note.
      if (value.length >= MIN_MASKED) {
        core.setSecret(value)
        registerSecret(value)
      } else if (value) {
        core.warning(
          `Forwarded variable ${name} looks secret but its value is shorter than ${MIN_MASKED} characters, so it is not masked in the log.`
        )
      }
      return `${name}=${value ? 'set' : 'empty'} len=${Buffer.byteLength(value)} secret=true`
    })
  if (patterns.length > 0) {
    core.info(
      entries.length > 0
        ? `env forwarding provider=smolvm behavior=forwarded vars=${entries.join(',')}`
        : `env forwarding provider=smolvm behavior=forwarded matched=none allow=${patterns.join(',')}`
    )
  }
  return out
}
