import type { SmolfleetClient } from '../smolfleet/client.js'
import type { GuestExec } from '../smolfleet/types.js'

/** A GuestExec bound to one machine, run from the guest's root. */
export function guestExec(
  client: SmolfleetClient,
  machineId: string
): GuestExec {
  return async (command, options) =>
    client.exec(
      machineId,
      {
        command,
        cwd: '/',
        ...(options?.timeoutSeconds
          ? { timeoutSeconds: options.timeoutSeconds }
          : {})
      },
      { idempotent: options?.idempotent ?? false }
    )
}
