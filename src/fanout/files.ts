// Reading and writing result files. download-artifact puts them either in
// one directory (merge-multiple) or one directory per artifact, so the
// reader searches the tree.

import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { formatResult, parseResult } from './result.js'
import type { LegResult } from './result.js'

export async function writeResultFile(
  path: string,
  result: LegResult
): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, formatResult(result), { mode: 0o644 })
}

export interface ResultDir {
  results: LegResult[]
  /** Files that could not be read as results; the merge goes on without. */
  problems: string[]
}

/** Every *.json below dir, in path order, so that reruns merge the same. */
export async function readResultDir(dir: string): Promise<ResultDir> {
  let entries: string[]
  try {
    entries = await readdir(dir, { recursive: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    return {
      results: [],
      problems: [`Directory ${dir} does not exist, so no leg left a result.`]
    }
  }
  const results: LegResult[] = []
  const problems: string[] = []
  for (const name of entries.filter((e) => e.endsWith('.json')).sort()) {
    const path = join(dir, name)
    try {
      results.push(
        parseResult(await readFile(path, 'utf8'), relative(dir, path))
      )
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      // A directory that happens to end in .json is not a result.
      if (code === 'EISDIR') continue
      problems.push((error as Error).message)
    }
  }
  return { results, problems }
}
