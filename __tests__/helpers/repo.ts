import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

/** git with a fixed identity, and local submodules allowed. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync(
    'git',
    [
      '-c',
      'user.name=Sync Test',
      '-c',
      'user.email=sync@example.test',
      '-c',
      'protocol.file.allow=always',
      '-c',
      'init.defaultBranch=main',
      ...args
    ],
    { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }
  )
}

/** A scratch git repository with the given files committed. */
export async function makeRepo(
  files: Record<string, string | Buffer>
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'smolvm-repo-'))
  git(dir, 'init', '-q', '-b', 'main')
  await writeFiles(dir, files)
  commitAll(dir)
  return dir
}

export async function writeFiles(
  dir: string,
  files: Record<string, string | Buffer>
): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), content)
  }
}

export function commitAll(dir: string, message = 'commit'): void {
  git(dir, 'add', '-A')
  git(dir, 'commit', '-q', '--allow-empty', '-m', message)
}

export async function makeExecutable(dir: string, path: string): Promise<void> {
  await chmod(join(dir, path), 0o755)
}

export async function makeSymlink(
  dir: string,
  path: string,
  target: string
): Promise<void> {
  await symlink(target, join(dir, path))
}
