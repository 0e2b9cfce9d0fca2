// Removes secrets from any text before it can reach a log, an error, an
// output or a summary. The API key itself is masked with the runner too, but
// messages built from HTTP errors may carry other secrets or partial echoes.

const MARK = '[redacted]'

const SECRET_KEYS =
  'authorization|proxy-authorization|x-api-key|api[-_]?key|' +
  'access[-_]?token|refresh[-_]?token|id[-_]?token|client[-_]?secret|' +
  'secret[-_]?access[-_]?key|api[-_]?secret|session[-_]?token|' +
  'private[-_]?key|credentials?|secret|token|password'

const PATTERNS: [RegExp, string][] = [
  // PEM private keys.
  [
    /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g,
    MARK
  ],
  // "Bearer xyz" and "Basic xyz" anywhere.
  [/\b(bearer|basic)(\s+|:\s*)(?!\[redacted\])[^\s"',;]+/gi, `$1$2${MARK}`],
  // JSON string values of secret-looking keys.
  [
    new RegExp(
      `("(?:${SECRET_KEYS})"\\s*:\\s*")(?!\\[redacted\\])(?:[^"\\\\]|\\\\.)*("|$)`,
      'gi'
    ),
    `$1${MARK}"`
  ],
  // key=value and key: value forms (headers, query strings, env dumps).
  [
    new RegExp(
      `(\\b(?:${SECRET_KEYS})\\s*[=:]\\s*)(?!\\[redacted\\]|bearer\\b|basic\\b|"|\\$\\{\\{)[^\\s&"',;]+`,
      'gi'
    ),
    `$1${MARK}`
  ],
  // userinfo in URLs.
  [/(\bhttps?:\/\/)[^\s/@:]+:[^\s/@]+@/gi, `$1${MARK}@`],
  // smolmachines keys that are not ours (another account's key echoed back).
  [/\bsmk_[A-Za-z0-9_-]{8,}/g, MARK]
]

const known = new Set<string>()

/** Registers a value that must never appear in any text we emit. */
export function registerSecret(value: string | undefined): void {
  const v = value?.trim()
  if (v && v.length >= 4) known.add(v)
}

/** Redacts registered secrets and secret-looking fragments from text. */
export function redact(text: string): string {
  let out = text
  const secrets = [...known].sort((a, b) => b.length - a.length)
  for (const s of secrets) out = out.split(s).join(MARK)
  for (const [pattern, replacement] of PATTERNS) {
    out = out.replace(pattern, replacement)
  }
  return out
}

/** Names that suggest the variable holds a secret. */
export function looksSecret(name: string): boolean {
  // By words of the name, so that AUTHOR_NAME or BYPASS_CACHE do not count.
  return name
    .toUpperCase()
    .split(/[^A-Z0-9]+/)
    .some((word) => SECRET_WORD.test(word))
}

const SECRET_WORD =
  /^((API|ACCESS|PRIVATE|SECRET|SSH|DEPLOY|SIGNING|LICENSE)?KEYS?|\w*TOKENS?|\w*SECRETS?|PASS|\w*PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?|AUTH|PAT)$/
