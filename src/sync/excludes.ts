// Exclude rules as Crabbox applies them (see the behavior reference, 4.3),
// so a repository's .crabboxignore means the same thing with this action.

/** Always excluded; later rules cannot re-include them. */
const PROTECTED = [
  '.crabbox/env',
  '.crabbox/scripts',
  '.crabbox/logs',
  '.crabbox/captures',
  '.crabbox/runs',
  // The guest keeps its sync manifest here; syncing a host copy over it
  // would break the deletion of removed files.
  '.smolvm-action'
]

const BUILT_IN = [
  '.git',
  '._*',
  'node_modules',
  '.ignored',
  '.turbo',
  '.next',
  '.vite',
  '.parcel-cache',
  '.rollup.cache',
  'dist',
  'dist-runtime',
  'coverage',
  'playwright-report',
  'test-results',
  '.cache',
  '.tmp',
  '.local',
  '.swiftpm',
  '.build',
  'apps/*/.build',
  '.pnpm-store',
  '.npm',
  '.yarn/cache',
  '.venv',
  '__pycache__',
  '.pytest_cache',
  '.mypy_cache',
  '.ruff_cache',
  '.gradle',
  'target'
]

/**
 * Built-ins that are often real source directories: they never exclude a
 * tracked regular file.
 */
const AMBIGUOUS = new Set([
  'dist',
  'dist-runtime',
  'coverage',
  'playwright-report',
  'test-results',
  '.build',
  'apps/*/.build',
  'target'
])

type RuleSource = 'built-in' | 'user' | 'protected'

interface Rule {
  pattern: string
  negate: boolean
  source: RuleSource
}

export interface ExcludeDecision {
  excluded: boolean
  /** Set when only the tracked-file protection kept the path. */
  protectedBy?: string
}

export class ExcludeRules {
  private readonly rules: Rule[]

  /** `userLines` are the exclude input lines, then .crabboxignore lines. */
  constructor(userLines: string[]) {
    this.rules = [
      ...BUILT_IN.map((p) => parseRule(p, 'built-in')),
      ...PROTECTED.map((p) => parseRule(p, 'protected')),
      ...userLines
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => parseRule(l, 'user')),
      ...PROTECTED.map((p) => parseRule(p, 'protected'))
    ]
  }

  decide(path: string, trackedRegular: boolean): ExcludeDecision {
    let deciding: Rule | undefined
    for (const rule of this.rules) {
      if (matchesRule(rule, path)) deciding = rule
    }
    if (deciding === undefined || deciding.negate) return { excluded: false }
    if (
      trackedRegular &&
      deciding.source === 'built-in' &&
      AMBIGUOUS.has(deciding.pattern)
    ) {
      return { excluded: false, protectedBy: deciding.pattern }
    }
    return { excluded: true }
  }
}

function parseRule(line: string, source: RuleSource): Rule {
  let text = line.trim()
  let negate = false
  if (text.startsWith('!')) {
    negate = true
    text = text.slice(1)
  } else if (text.startsWith('\\!')) {
    text = text.slice(1)
  }
  return { pattern: normalizePattern(text), negate, source }
}

function normalizePattern(p: string): string {
  return p.trim().replaceAll('\\', '/').replace(/^\/+/, '').replace(/\/+$/, '')
}

function matchesRule(rule: Rule, path: string): boolean {
  const p = rule.pattern
  if (p === '') return false
  if (rule.source === 'protected') {
    const lower = path.toLowerCase()
    const lp = p.toLowerCase()
    if (lower === lp || lower.startsWith(`${lp}/`)) return true
  }
  return excludeMatches(p, path)
}

/** Crabbox's matching rules (a) to (e) for a normalized pattern. */
export function excludeMatches(pattern: string, path: string): boolean {
  if (path === pattern || path.startsWith(`${pattern}/`)) return true
  const segments = path.split('/')
  if (!pattern.includes('/')) {
    if (segments.some((s) => s === pattern || globMatch(pattern, s))) {
      return true
    }
  }
  if (globMatch(pattern, segments[segments.length - 1] ?? '')) return true
  if (globMatch(pattern, path)) return true
  for (let i = 1; i < segments.length; i++) {
    if (globMatch(pattern, segments.slice(0, i).join('/'))) return true
  }
  return false
}

const compiled = new Map<string, RegExp | null>()

/**
 * Go `filepath.Match` on `/`-separated names: `*` and `?` stop at `/`,
 * `[...]` is a class (`^` negates). A malformed pattern matches nothing,
 * as Go's ErrBadPattern does. Backslashes are already `/` here, so there
 * are no escapes.
 */
export function globMatch(pattern: string, name: string): boolean {
  let re = compiled.get(pattern)
  if (re === undefined) {
    re = compileGlob(pattern)
    compiled.set(pattern, re)
  }
  return re !== null && re.test(name)
}

function compileGlob(pattern: string): RegExp | null {
  const chars = Array.from(pattern)
  let out = ''
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string
    if (c === '*') {
      out += '[^/]*'
    } else if (c === '?') {
      out += '[^/]'
    } else if (c === '[') {
      const end = parseClass(chars, i + 1)
      if (end === null) return null
      out += end.source
      i = end.next - 1
    } else {
      out += literal(c)
    }
  }
  try {
    return new RegExp(`^${out}$`, 'u')
  } catch {
    return null
  }
}

function parseClass(
  chars: string[],
  start: number
): { source: string; next: number } | null {
  let i = start
  let negate = false
  if (chars[i] === '^') {
    negate = true
    i++
  }
  let body = ''
  let ranges = 0
  while (i < chars.length && chars[i] !== ']') {
    const lo = chars[i] as string
    if (chars[i + 1] === '-' && i + 2 < chars.length && chars[i + 2] !== ']') {
      const hi = chars[i + 2] as string
      if ((hi.codePointAt(0) ?? 0) < (lo.codePointAt(0) ?? 0)) return null
      body += `${literal(lo)}-${literal(hi)}`
      i += 3
    } else if (lo === '-') {
      // Go rejects a bare '-' outside a range.
      return null
    } else {
      body += literal(lo)
      i++
    }
    ranges++
  }
  if (i >= chars.length || ranges === 0) return null
  return { source: `[${negate ? '^' : ''}${body}]`, next: i + 1 }
}

function literal(c: string): string {
  return `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`
}
