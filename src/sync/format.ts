const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** Byte counts the way Crabbox prints them: `512 B`, `1.5 KiB`, `20.0 GiB`. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`
}

/** POSIX single-quoting: safe for any byte string except NUL. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`
}

/** Compares strings by their UTF-8 bytes, as git and Go sort paths. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/** A relative path that cannot escape or alias the directory it names. */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.startsWith('/') || p.includes('\0')) return false
  return p.split('/').every((s) => s !== '' && s !== '.' && s !== '..')
}
