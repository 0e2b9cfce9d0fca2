// Retry policy for smolfleet calls: exponential backoff with full jitter,
// bounded in attempts and in total time, honouring Retry-After.

export interface RetryPolicy {
  attempts: number
  baseMs: number
  maxDelayMs: number
  budgetMs: number
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseMs: 500,
  maxDelayMs: 8000,
  budgetMs: 60_000
}

/** Statuses that say the server did not act on the request. */
export const TRANSIENT_STATUSES = new Set([429, 502, 503, 504])

/** Delay before attempt `attempt + 1` (attempt counts from 1). */
export function backoffMs(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random
): number {
  const ceiling = Math.min(
    policy.maxDelayMs,
    policy.baseMs * 2 ** (attempt - 1)
  )
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(
  header: string | undefined,
  now: number
): number | undefined {
  if (!header) return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}
