import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import {
  checkSyncRoot,
  checkSyncSize,
  listSyncFiles,
  SyncInputError,
  type FileList,
  type SyncLog
} from '../../src/sync/index.js'
import { git } from '../helpers/repo.js'

const scratch = mkdtempSync(join(tmpdir(), 'sync-list-'))
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true })
})

function write(root: string, path: string, content = `${path}\n`): void {
  mkdirSync(dirname(join(root, path)), { recursive: true })
  writeFileSync(join(root, path), content)
}

function newRepo(name: string, files: Record<string, string>): string {
  const root = join(scratch, name)
  mkdirSync(root, { recursive: true })
  git(root, 'init', '-q')
  for (const [path, content] of Object.entries(files))
    write(root, path, content)
  return root
}

interface RecordingLog extends SyncLog {
  infos: string[]
  warnings: string[]
}

function recordingLog(): RecordingLog {
  const infos: string[] = []
  const warnings: string[] = []
  return {
    infos,
    warnings,
    info: (m) => infos.push(m),
    warning: (m) => warnings.push(m),
    debug: () => undefined
  }
}

describe('checkSyncRoot', () => {
  it('rejects a missing path, naming it and the fix', async () => {
    const missing = join(scratch, 'nope')
    const err = await checkSyncRoot(missing).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SyncInputError)
    expect((err as Error).message).toContain(missing)
    expect((err as Error).message).toMatch(/does not exist.*actions\/checkout/)
  })

  it('rejects a file', async () => {
    write(scratch, 'plain-file')
    await expect(checkSyncRoot(join(scratch, 'plain-file'))).rejects.toThrow(
      /is not a directory/
    )
  })

  it('rejects a directory outside any git work tree', async () => {
    const dir = join(scratch, 'not-git')
    mkdirSync(dir)
    const err = await checkSyncRoot(dir).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SyncInputError)
    expect((err as Error).message).toMatch(
      /not inside a git work tree.*run actions\/checkout before this step, or set sync: false/s
    )
  })

  it('accepts the repo and a subdirectory of it', async () => {
    const root = newRepo('rooted', { 'pkg/a.txt': 'a', 'b.txt': 'b' })
    expect(await checkSyncRoot(root)).toBe(realpathSync(root))
    const sub = await checkSyncRoot(join(root, 'pkg'))
    expect(sub).toBe(realpathSync(join(root, 'pkg')))
    const list = await listSyncFiles(sub, [])
    expect(list.files.map((f) => f.path)).toEqual(['a.txt'])
  })
})

describe('listSyncFiles', () => {
  let root: string
  let list: FileList

  beforeAll(async () => {
    const sub = newRepo('submodule-src', { 'lib.txt': 'lib\n' })
    git(sub, 'add', '-A')
    git(sub, 'commit', '-qm', 'sub')

    root = newRepo('main', {
      '.gitignore': '*.log\n',
      '.crabboxignore': '# comment\nsecret\n!keep.tmp\n',
      'README.md': '# hi\n',
      'run.sh': '#!/bin/sh\necho hi\n',
      'ignored.log': 'no\n',
      'a.tmp': 'no\n',
      'keep.tmp': 'yes\n',
      'secret/key': 'no\n',
      'node_modules/pkg/index.js': 'tracked but built-in excluded\n',
      'dist/x.js': 'tracked, kept\n',
      'coverage/lcov.info': 'untracked, excluded\n',
      'gone.txt': 'deleted after commit\n',
      'é 文件/it\'s "q".txt': 'unicode\n',
      '.smolvm-action/manifest': 'never synced\n'
    })
    chmodSync(join(root, 'run.sh'), 0o755)
    symlinkSync('README.md', join(root, 'link'))
    git(root, 'add', '-f', 'README.md', 'run.sh', 'node_modules', 'dist')
    git(root, 'add', '-f', 'gone.txt', 'link', '.gitignore')
    git(root, 'submodule', '-q', 'add', sub, 'sub')
    git(root, 'commit', '-qm', 'init')
    rmSync(join(root, 'gone.txt'))
    write(root, 'untracked.txt')
    list = await listSyncFiles(await checkSyncRoot(root), ['*.tmp'])
  })

  it('lists tracked and untracked files after the exclude rules', () => {
    expect(list.files.map((f) => f.path)).toEqual([
      '.crabboxignore',
      '.gitignore',
      '.gitmodules',
      'README.md',
      'dist/x.js',
      'keep.tmp',
      'link',
      'run.sh',
      'sub/lib.txt',
      'untracked.txt',
      'é 文件/it\'s "q".txt'
    ])
    expect(list.bytes).toBe(list.files.reduce((n, f) => n + f.size, 0))
    expect(list.protectedTracked).toEqual(['dist/x.js (dist)'])
  })

  it('records kinds, modes and link targets', () => {
    const byPath = new Map(list.files.map((f) => [f.path, f]))
    expect(byPath.get('link')).toMatchObject({
      kind: 'symlink',
      linkTarget: 'README.md',
      size: 'README.md'.length
    })
    expect((byPath.get('run.sh')?.mode ?? 0) & 0o111).not.toBe(0)
    expect((byPath.get('README.md')?.mode ?? 0) & 0o111).toBe(0)
  })
})

describe('checkSyncSize', () => {
  const list: FileList = {
    root: '/x',
    files: [
      { path: 'a/1', size: 600, kind: 'file', mode: 0o644 },
      { path: 'a/2', size: 600, kind: 'file', mode: 0o644 },
      { path: 'b', size: 10, kind: 'file', mode: 0o644 }
    ],
    bytes: 1210,
    protectedTracked: []
  }

  it('logs the candidate and stays quiet under the thresholds', () => {
    const log = recordingLog()
    checkSyncSize(list, false, log, {})
    expect(log.infos).toEqual(['sync candidate: 3 files, 1.2 KiB'])
    expect(log.warnings).toEqual([])
  })

  it('warns with the top dirs and the fix', () => {
    const log = recordingLog()
    checkSyncSize(list, false, log, {
      CRABBOX_SYNC_WARN_FILES: '3',
      CRABBOX_SYNC_WARN_BYTES: '1024'
    })
    expect(log.warnings).toEqual([
      'large sync candidate: 3 files >= warning threshold 3, ' +
        '1.2 KiB >= warning threshold 1.0 KiB (top dirs: a:2, .:1); ' +
        'add generated paths to .crabboxignore or the exclude input, ' +
        'or set force-sync-large: true when intentional.'
    ])
  })

  it.each([
    [{ CRABBOX_SYNC_FAIL_FILES: '2' }, /3 files >= limit 2/],
    [{ CRABBOX_SYNC_FAIL_BYTES: '1000' }, /1\.2 KiB >= limit 1000 B/]
  ])('refuses over a fail threshold (%j)', (env, message) => {
    expect(() => {
      checkSyncSize(list, false, recordingLog(), env)
    }).toThrow(SyncInputError)
    expect(() => {
      checkSyncSize(list, false, recordingLog(), env)
    }).toThrow(message)
  })

  it('lets force-sync-large or CRABBOX_SYNC_ALLOW_LARGE pass, still warning', () => {
    const env = { CRABBOX_SYNC_FAIL_FILES: '2', CRABBOX_SYNC_WARN_FILES: '2' }
    const log = recordingLog()
    checkSyncSize(list, true, log, env)
    expect(log.warnings).toHaveLength(1)
    checkSyncSize(list, false, recordingLog(), {
      ...env,
      CRABBOX_SYNC_ALLOW_LARGE: '1'
    })
  })

  it('treats 0 as off and warns about a malformed value', () => {
    const log = recordingLog()
    checkSyncSize(list, false, log, {
      CRABBOX_SYNC_FAIL_FILES: '0',
      CRABBOX_SYNC_WARN_BYTES: 'lots'
    })
    expect(log.warnings).toHaveLength(1)
    expect(log.warnings[0]).toMatch(/CRABBOX_SYNC_WARN_BYTES=lots/)
  })

  it('reports tracked files spared from built-in excludes, at most five, without an annotation', () => {
    const log = recordingLog()
    const spared = Array.from({ length: 7 }, (_, i) => `dist/${i} (dist)`)
    checkSyncSize({ ...list, protectedTracked: spared }, false, log, {})
    expect(log.warnings).toEqual([])
    expect(log.infos.find((m) => m.startsWith('protected'))).toMatch(
      /^protected 7 tracked files from built-in artifact excludes: dist\/0 \(dist\), .*dist\/4 \(dist\) \(\+2 more\)/
    )
  })
})
