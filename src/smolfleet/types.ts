// Shapes of the smolfleet /v1 API as the action uses them (see the API
// reference). Fields the action never reads are left out.

export interface MachineRecord {
  id: string
  name: string
  state: string
  source?: { type?: string; reference?: string }
  resources?: { cpus?: number; memoryMb?: number; diskGb?: number }
  network?: { mode?: string; cidrs?: string[] }
  workdir?: string
  createdAt?: string
  updatedAt?: string
}

export type NetworkMode = 'open' | 'blocked'

export interface CreateMachineRequest {
  name: string
  source: { type: 'image'; reference: string }
  resources: { cpus: number; memoryMb: number }
  network: { mode: NetworkMode }
  workdir: string
  ephemeral?: boolean
  ttlSeconds?: number
}

export interface ExecRequest {
  command: string | string[]
  cwd?: string
  env?: Record<string, string>
  timeoutSeconds?: number
}

export interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
}

/**
 * Runs one shell command string in a sandbox. Callers say whether the
 * command may safely be sent again when its answer is lost.
 */
export type GuestExec = (
  command: string,
  options?: { idempotent?: boolean; timeoutSeconds?: number }
) => Promise<ExecResult>
