/**
 * The local input cannot be synced as given: the path is missing or not a
 * git checkout, or the size guard refused it. The message says how to fix it.
 */
export class SyncInputError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SyncInputError'
  }
}
