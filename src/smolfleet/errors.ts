/** A non-2xx answer from the smolfleet API; `message` is already redacted. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

/** The request was sent but no answer came back (reset, timeout). */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly sent: boolean
  ) {
    super(message)
    this.name = 'TransportError'
  }
}
