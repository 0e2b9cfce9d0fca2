// Reading thrown values without `instanceof Error`, which fails for errors
// made in another realm (Node's own errors seen from jest's VM modules).

/** setTimeout's longest delay; a longer one would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647

export function errorMessage(error: unknown): string {
  const message = field(error, 'message')
  return typeof message === 'string' ? message : String(error)
}

/** The errno code of a Node system error, like 'ENOENT'. */
export function errorCode(error: unknown): string | undefined {
  const code = field(error, 'code')
  return typeof code === 'string' ? code : undefined
}

function field(error: unknown, name: string): unknown {
  if (typeof error !== 'object' || error === null) return undefined
  return (error as Record<string, unknown>)[name]
}
