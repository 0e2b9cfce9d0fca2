// What to do about an error, added to its message where the cause is
// known: the API's refusals and an address where nothing answered.

import { KEY_VARIABLES } from '../inputs.js'
import { ApiError, TransportError } from '../smolfleet/errors.js'

/** The error's message, with what to do about the API's refusals. */
export function explain(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof TransportError && !error.sent) {
    return `${message}. Nothing answered there: check base-url (or CRABBOX_SMOLVM_BASE_URL).`
  }
  if (!(error instanceof ApiError)) return message
  switch (error.status) {
    case 401:
      return `${message}. The API key was refused: check api-key (or ${KEY_VARIABLES.join(', ')}) and that the key is not revoked.`
    case 402:
      return `${message}. The account cannot be billed: check the smol machines console.`
    case 403:
      return `${message}. The API key lacks a permission this step needs: create a key with that scope.`
    case 422:
      return `${message}. The API refused the request as it is; if it speaks of a quota, stop unused sandboxes (mode list, mode stop) or raise the quota.`
    default:
      return message
  }
}
