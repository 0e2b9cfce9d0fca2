// The shell text sent to the guest to run the user's script. The script and
// the forwarded variables travel as files in a private directory under
// /tmp, outside the synced tree; the variables file is removed as soon as it
// has been read, before the user's script starts.

import { randomBytes } from 'node:crypto'

/** POSIX single-quoting. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`
}

export const PREPARED = 'smolvm-action-prepared'
// Exit code of the guard that refuses to start one script twice.
export const ALREADY_STARTED = 86

export interface GuestRun {
  dir: string
  prepare: string
  run: string
  /** Prints "started" and, once the script ended, "exit <code>". */
  probe: string
  cleanup: string
}

// Stays well under the guest's 128 KiB limit for one argument.
const MAX_PREPARE_BYTES = 96 * 1024

export function envProfile(env: Record<string, string>): string {
  const lines = Object.keys(env)
    .sort()
    .map((name) => `${name}=${shellQuote(env[name] as string)}`)
  return ['set -a', ...lines, 'set +a', ''].join('\n')
}

function heredocFile(path: string, content: string): string {
  const delimiter = `SMOLVM_ACTION_EOF_${randomBytes(6).toString('hex')}`
  const payload = Buffer.from(content, 'utf8').toString('base64')
  return `base64 -d > ${path} <<'${delimiter}'\n${payload}\n${delimiter}\n`
}

/**
 * Fails early, before a sandbox exists, when the script and variables
 * cannot fit in one call (the lease's own variables are estimated).
 */
export function checkRunSize(
  script: string,
  env: Record<string, string>
): void {
  const lease = {
    CRABBOX_LEASE_ID: 'cbx_000000000000',
    CRABBOX_SLUG: 'x'.repeat(80),
    CRABBOX_RUN_ID: 'run_000000000000'
  }
  buildGuestRun(script, { ...env, ...lease }, '/workspace')
}

export function buildGuestRun(
  script: string,
  env: Record<string, string>,
  cwd: string
): GuestRun {
  const dir = `/tmp/smolvm-action-run-${randomBytes(8).toString('hex')}`
  const q = shellQuote(dir)
  const prepare =
    `set -e\numask 077\nmkdir -p ${q}\n` +
    heredocFile(`${q}/env.sh`, envProfile(env)) +
    heredocFile(`${q}/script.sh`, script) +
    `echo ${PREPARED}\n`
  if (Buffer.byteLength(prepare) > MAX_PREPARE_BYTES) {
    throw new Error(
      `Input run and the forwarded variables take ${Buffer.byteLength(prepare)} bytes once encoded; at most ${MAX_PREPARE_BYTES} fit in one call. Put the script in a file in the repository and run that file.`
    )
  }
  // mkdir is atomic: if this request were ever delivered twice, the second
  // copy refuses to run the script again.
  const run =
    `mkdir ${q}/started 2>/dev/null || { echo 'smolvm-action: this script was already started once; it is not run again.' >&2; exit ${ALREADY_STARTED}; }\n` +
    `set -a\n. ${q}/env.sh\nset +a\nrm -f ${q}/env.sh\n` +
    `cd ${shellQuote(cwd)} 2>/dev/null || { echo ${shellQuote(`smolvm-action: the directory ${cwd} does not exist in the sandbox; check working-directory and workdir.`)} >&2; exit 1; }\n` +
    // The exit code is also written down, so that it can still be read if
    // the connection drops while the script runs.
    `sh -e ${q}/script.sh\nrc=$?\necho "$rc" > ${q}/rc\nexit "$rc"\n`
  const probe =
    `if [ -d ${q}/started ]; then echo started; fi\n` +
    `if [ -f ${q}/rc ]; then echo "exit $(cat ${q}/rc)"; fi\ntrue\n`
  return { dir, prepare, run, probe, cleanup: `rm -rf ${q}` }
}
