// Decides where the API key may be sent. The rules follow the Crabbox CLI so
// that both tools trust the same destinations.

export const DEFAULT_BASE_URL = 'https://api.smolmachines.com'

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

function isTrustedHost(host: string): boolean {
  return (
    LOOPBACK.has(host) ||
    host === 'smolmachines.com' ||
    host.endsWith('.smolmachines.com')
  )
}

/**
 * Validates and normalises a base URL. Returns the URL without trailing
 * slashes; throws an Error naming the input and the rule it breaks.
 */
export function checkBaseUrl(raw: string, allowCustom: boolean): string {
  const value = raw.trim() || DEFAULT_BASE_URL
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new Error(
      `Input base-url "${value}" is not a valid URL; use an https URL such as ${DEFAULT_BASE_URL}.`
    )
  }
  if (url.username || url.password) {
    throw new Error(
      'Input base-url must not include a user name or password; send the key through api-key.'
    )
  }
  const host = url.hostname.toLowerCase()
  const loopbackHttp = url.protocol === 'http:' && LOOPBACK.has(host)
  if (url.protocol !== 'https:' && !loopbackHttp) {
    throw new Error(
      `Input base-url "${value}" must use https (plain http is accepted only for localhost, 127.0.0.1 and [::1]).`
    )
  }
  if (url.search || url.hash || value.includes('?') || value.includes('#')) {
    throw new Error(
      `Input base-url "${value}" must not include a query or fragment.`
    )
  }
  if (!isTrustedHost(host) && !allowCustom) {
    throw new Error(
      `Input base-url host "${host}" is not an official Smol Machines endpoint; set allow-custom-base-url: true only if you trust it with your API key.`
    )
  }
  return url.toString().replace(/\/+$/, '')
}

/** Same scheme, host and effective port: redirects may only go there. */
export function sameOrigin(base: string, target: string): boolean {
  const a = new URL(base)
  const b = new URL(target)
  const port = (u: URL): string =>
    u.port || (u.protocol === 'https:' ? '443' : '80')
  return (
    a.protocol === b.protocol &&
    a.hostname.toLowerCase() === b.hostname.toLowerCase() &&
    port(a) === port(b)
  )
}
