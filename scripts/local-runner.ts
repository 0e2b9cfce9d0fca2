// Runs the bundled action the way the runner does: inputs as INPUT_*, the
// GITHUB_OUTPUT / GITHUB_STATE / GITHUB_STEP_SUMMARY files, then the post
// step with the saved state as STATE_*.

import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

// Where the bundles live; the demo and the tests run from the repository root.
export const DIST = resolve(process.env.SMOLVM_ACTION_DIST ?? 'dist')

export interface StepResult {
  code: number | null
  signal: NodeJS.Signals | null
  log: string
  outputs: Record<string, string>
  state: Record<string, string>
  summary: string
}

export interface StepOptions {
  env?: Record<string, string | undefined>
  state?: Record<string, string>
  cwd?: string
  /** Called once the process runs, e.g. to cancel it. */
  onStart?: (child: ChildProcess, log: () => string) => void
}

/** Parses a GITHUB_OUTPUT / GITHUB_STATE file as the runner does. */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    if (line === '') continue
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line)
    if (heredoc) {
      const [, name, delimiter] = heredoc as unknown as [string, string, string]
      const value: string[] = []
      for (i++; i < lines.length && lines[i] !== delimiter; i++)
        value.push(lines[i] as string)
      if (i >= lines.length)
        throw new Error(`Matching delimiter not found '${delimiter}'`)
      out[name] = value.join('\n')
    } else {
      const eq = line.indexOf('=')
      if (eq < 0) throw new Error(`Invalid format '${line}'`)
      out[line.slice(0, eq)] = line.slice(eq + 1)
    }
  }
  return out
}

function inputEnv(inputs: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(inputs)) {
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value
  }
  return env
}

/** A clean environment: no runner variables leak in from the test process. */
function baseEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT']
  const env: Record<string, string> = {}
  for (const k of keep) if (process.env[k]) env[k] = process.env[k]
  return env
}

export async function runStep(
  entry: 'main' | 'post',
  inputs: Record<string, string>,
  options: StepOptions = {}
): Promise<StepResult> {
  const dir = await mkdtemp(join(tmpdir(), 'smolvm-step-'))
  const files = {
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STATE: join(dir, 'state'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary')
  }
  for (const f of Object.values(files)) await writeFile(f, '')
  const stateEnv: Record<string, string> = {}
  for (const [k, v] of Object.entries(options.state ?? {}))
    stateEnv[`STATE_${k}`] = v
  let env: Record<string, string> = {
    ...baseEnv(),
    ...files,
    ...inputEnv(inputs),
    ...stateEnv
  }
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined)
      env = Object.fromEntries(
        Object.entries(env).filter(([name]) => name !== k)
      )
    else env[k] = v
  }
  const child = spawn(process.execPath, [join(DIST, entry, 'index.js')], {
    cwd: options.cwd ?? process.cwd(),
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let log = ''
  child.stdout.on('data', (d: Buffer) => (log += d.toString()))
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  options.onStart?.(child, () => log)
  const [code, signal] = await new Promise<
    [number | null, NodeJS.Signals | null]
  >((res) => child.on('close', (c, s) => res([c, s])))
  return {
    code,
    signal,
    log,
    outputs: parseFileCommands(await readFile(files.GITHUB_OUTPUT, 'utf8')),
    state: parseFileCommands(await readFile(files.GITHUB_STATE, 'utf8')),
    summary: await readFile(files.GITHUB_STEP_SUMMARY, 'utf8')
  }
}

/** main, then post with main's state, as one `uses:` step. */
export async function runMainAndPost(
  inputs: Record<string, string>,
  options: StepOptions = {}
): Promise<{ main: StepResult; post: StepResult }> {
  const main = await runStep('main', inputs, options)
  const post = await runStep('post', inputs, {
    ...options,
    onStart: undefined,
    state: main.state
  })
  return { main, post }
}

export function waitFor(
  predicate: () => boolean,
  timeoutMs = 30_000,
  what = 'condition'
): Promise<void> {
  const start = Date.now()
  return new Promise((res, rej) => {
    const tick = (): void => {
      if (predicate()) return res()
      if (Date.now() - start > timeoutMs)
        return rej(new Error(`timed out waiting for ${what}`))
      setTimeout(tick, 20)
    }
    tick()
  })
}
