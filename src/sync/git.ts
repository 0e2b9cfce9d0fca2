import { execFile } from 'node:child_process'
import { realpath, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { SyncInputError } from './errors.js'

// ls-files on a large monorepo prints tens of MiB; execFile's default 1 MiB
// buffer would cut it off.
const GIT_MAX_BUFFER = 1024 * 1024 * 1024

export interface GitResult {
  code: number
  stdout: Buffer
  stderr: string
}

/** Runs git without a shell; a non-zero exit is returned, not thrown. */
export function git(cwd: string, args: string[]): Promise<GitResult> {
  return new Promise((done, fail) => {
    execFile(
      'git',
      args,
      { cwd, encoding: 'buffer', maxBuffer: GIT_MAX_BUFFER },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : error.code
        if (code === 'ENOENT') {
          fail(
            new SyncInputError(
              'git was not found on PATH; the sync needs it to list the ' +
                "repository's files. Install git, or set sync: false."
            )
          )
          return
        }
        if (typeof code !== 'number') {
          // No exit code: the output overflowed or git could not start.
          const why = error?.message ?? String(code)
          fail(new Error(`Running git ${args[0] ?? ''} failed: ${why}`))
          return
        }
        done({ code, stdout, stderr: stderr.toString('utf8').trim() })
      }
    )
  })
}

/** Runs git and returns its stdout, throwing with git's stderr on failure. */
export async function gitOutput(cwd: string, args: string[]): Promise<Buffer> {
  const r = await git(cwd, args)
  if (r.code !== 0) {
    const command = `git ${args.join(' ')}`
    throw new Error(
      `${command} failed in ${cwd} (exit code ${r.code}): ${r.stderr}`
    )
  }
  return r.stdout
}

/**
 * Resolves the directory to sync. It must be a directory inside a git work
 * tree. A subdirectory of a repository is synced on its own: the file list
 * holds only its files, relative to it (git ls-files run there lists
 * exactly those), and its .crabboxignore is the one read.
 */
export async function checkSyncRoot(path: string): Promise<string> {
  const absolute = resolve(path)
  const fix = 'run actions/checkout before this step, or set sync: false'
  let isDir: boolean
  try {
    isDir = (await stat(absolute)).isDirectory()
  } catch {
    throw new SyncInputError(`Input path ${absolute} does not exist; ${fix}.`)
  }
  if (!isDir) {
    throw new SyncInputError(
      `Input path ${absolute} is not a directory; point it ` +
        `at the checkout directory, or set sync: false.`
    )
  }

  const r = await git(absolute, ['rev-parse', '--is-inside-work-tree'])
  if (r.code !== 0 || r.stdout.toString('utf8').trim() !== 'true') {
    const why = r.stderr === '' ? '' : ` (git says: ${firstLine(r.stderr)})`
    throw new SyncInputError(
      `Input path ${absolute} is not inside a git work tree${why}; ` +
        `the sync needs git to know which files belong to the repository, ` +
        `so ${fix}.`
    )
  }
  return realpath(absolute)
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? ''
}
