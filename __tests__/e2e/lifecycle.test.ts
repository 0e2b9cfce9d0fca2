// Crabbox's live smoke sequence and the main lifecycle cases, run with the
// bundled action against the local smolfleet server.

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startServer } from '../../server/server.js'
import type { SmolfleetServer } from '../../server/server.js'
import { runMainAndPost, runStep } from '../../scripts/local-runner.js'
import {
  GUEST_LISTING_SCRIPT,
  compareListings,
  hostListing,
  parseGuestListing
} from '../../scripts/verify-sync.js'
import {
  commitAll,
  makeExecutable,
  makeRepo,
  makeSymlink,
  writeFiles
} from '../helpers/repo.js'

const KEY = 'smk_e2e_lifecycle_key_0001'
let server: SmolfleetServer
let repo: string

function inputs(extra: Record<string, string>): Record<string, string> {
  return { 'api-key': KEY, 'base-url': server.url, path: repo, ...extra }
}

beforeAll(async () => {
  server = await startServer({ apiKeys: [KEY] })
  repo = await makeRepo({
    'README.md': '# fixture\n',
    'src/app.sh': '#!/bin/sh\necho app\n',
    'src/data.txt': 'one\n',
    'docs/ünïcødé name with spaces.txt': 'text\n',
    [`deep/${'d'.repeat(90)}/${'f'.repeat(120)}.txt`]: 'long\n',
    'remove-me.txt': 'bye\n',
    '.gitignore': 'ignored.log\n'
  })
  await makeExecutable(repo, 'src/app.sh')
  await makeSymlink(repo, 'link-to-readme', 'README.md')
  await writeFiles(repo, { 'untracked.txt': 'new\n', 'ignored.log': 'no\n' })
  commitAll(repo)
})

afterAll(async () => {
  await server.close()
  await rm(repo, { recursive: true, force: true })
})

describe('Crabbox live smoke sequence', () => {
  let leaseId = ''
  let slug = ''

  test('keep with a slug and a forwarded variable; the synced tree equals the host', async () => {
    const { main, post } = await runMainAndPost(
      inputs({
        run: `echo "value=$SMOKE_VALUE lease=$CRABBOX_LEASE_ID"\n${GUEST_LISTING_SCRIPT}`,
        keep: 'true',
        slug: 'Smoke Test',
        'env-forward': 'SMOKE_VALUE'
      }),
      { env: { SMOKE_VALUE: 'forwarded ok' } }
    )
    expect(main.code).toBe(0)
    leaseId = main.outputs['lease-id'] as string
    slug = main.outputs.slug as string
    expect(leaseId).toMatch(/^cbx_[0-9a-f]{12}$/)
    expect(slug).toBe('smoke-test')
    expect(main.log).toContain(`value=forwarded ok lease=${leaseId}`)
    expect(main.outputs).toMatchObject({
      kept: 'true',
      reused: 'false',
      'exit-code': '0'
    })
    expect(main.outputs['cleanup-command']).toBe(
      `crabbox stop --provider smolvm --id '${leaseId}'`
    )
    expect(main.log).toMatch(
      /smolvm run summary sync=\S+ command=\S+ total=\S+ exit=0/
    )
    const problems = compareListings(
      await hostListing(repo),
      parseGuestListing(main.log)
    )
    expect(problems).toEqual([])
    expect(parseGuestListing(main.log).has('./ignored.log')).toBe(false)
    expect(post.code).toBe(0)
    expect(post.log).toContain('kept on purpose')
    expect(server.machines().map((m) => m.name)).toEqual([
      `crabbox-smoke-test-${leaseId.slice(4)}`
    ])
  })

  test('a second sync adds, updates and deletes files', async () => {
    await writeFiles(repo, { 'added.txt': 'added\n', 'src/data.txt': 'two\n' })
    await rm(join(repo, 'remove-me.txt'))
    commitAll(repo)
    const { main } = await runMainAndPost(
      inputs({ id: slug, run: GUEST_LISTING_SCRIPT })
    )
    expect(main.code).toBe(0)
    expect(main.outputs).toMatchObject({
      reused: 'true',
      kept: 'true',
      'lease-id': leaseId
    })
    const guest = parseGuestListing(main.log)
    expect(compareListings(await hostListing(repo), guest)).toEqual([])
    expect(guest.has('./remove-me.txt')).toBe(false)
    expect(guest.has('./added.txt')).toBe(true)
  })

  test('exit code 23 comes through and fails the step', async () => {
    const { main } = await runMainAndPost(
      inputs({ id: leaseId, sync: 'false', run: 'echo failing; exit 23' })
    )
    expect(main.code).toBe(1)
    expect(main.outputs['exit-code']).toBe('23')
    expect(main.log).toContain('::error::The script exited with code 23.')
    expect(server.machines()).toHaveLength(1)
  })

  test('status and list', async () => {
    const status = await runStep(
      'main',
      inputs({ mode: 'status', id: leaseId })
    )
    expect(status.code).toBe(0)
    expect(status.outputs.state).toBe('running')
    expect(status.outputs['lease-id']).toBe(leaseId)
    const list = await runStep('main', inputs({ mode: 'list' }))
    const leases = JSON.parse(list.outputs.leases as string) as {
      leaseId: string
      slug: string
    }[]
    expect(leases.map((l) => [l.leaseId, l.slug])).toEqual([[leaseId, slug]])
  })

  test('stop, then the sandbox is absent from the list', async () => {
    const stop = await runStep('main', inputs({ mode: 'stop', id: slug }))
    expect(stop.code).toBe(0)
    expect(stop.log).toContain(`released lease=${leaseId}`)
    const list = await runStep('main', inputs({ mode: 'list' }))
    expect(JSON.parse(list.outputs.leases as string)).toEqual([])
    expect(server.machines()).toHaveLength(0)
  })
})

test('a one-shot run leaves zero machines', async () => {
  const leaseOutput = join(
    repo,
    '..',
    `lease-${randomBytes(4).toString('hex')}.json`
  )
  const { main, post } = await runMainAndPost(
    inputs({
      run: 'test -f README.md && echo synced-ok',
      'lease-output': leaseOutput
    })
  )
  expect(main.code).toBe(0)
  expect(main.log).toContain('synced-ok')
  expect(main.outputs).toMatchObject({
    kept: 'false',
    reused: 'false',
    'exit-code': '0'
  })
  expect(Number(main.outputs['total-ms'])).toBeGreaterThan(0)
  const lease = JSON.parse(await readFile(leaseOutput, 'utf8')) as Record<
    string,
    unknown
  >
  expect(lease).toEqual({
    provider: 'smolvm',
    leaseId: main.outputs['lease-id'],
    slug: main.outputs.slug,
    reused: false,
    kept: false,
    cleanupCommand: main.outputs['cleanup-command'],
    machineId: main.outputs['machine-id']
  })
  expect(main.summary).toContain(main.outputs['lease-id'])
  expect(post.code).toBe(0)
  expect(server.machines()).toHaveLength(0)
  // The one-shot sandbox was created ephemeral, with a server-side lifetime.
  const create = server
    .requests()
    .filter((r) => r.method === 'POST' && r.path === '/v1/machines')
  expect(create.length).toBeGreaterThan(0)
})

test('keep-on-failure keeps the sandbox of a failed run and says how to stop it', async () => {
  const { main, post } = await runMainAndPost(
    inputs({ run: 'exit 3', 'keep-on-failure': 'true' })
  )
  expect(main.code).toBe(1)
  expect(main.outputs).toMatchObject({ kept: 'true', 'exit-code': '3' })
  expect(main.summary).toContain('mode: stop')
  expect(post.log).toContain('kept on purpose')
  expect(server.machines()).toHaveLength(1)
  const stop = await runStep(
    'main',
    inputs({ mode: 'stop', id: main.outputs['lease-id'] as string })
  )
  expect(stop.code).toBe(0)
  expect(server.machines()).toHaveLength(0)
})

test('keep-on-failure deletes the sandbox of a run that passes', async () => {
  const { main } = await runMainAndPost(
    inputs({ run: 'true', 'keep-on-failure': 'true' })
  )
  expect(main.code).toBe(0)
  expect(main.outputs.kept).toBe('false')
  expect(server.machines()).toHaveLength(0)
})

test('warmup keeps a sandbox that a later run reuses and stop deletes', async () => {
  const warm = await runMainAndPost(
    inputs({ mode: 'warmup', 'ttl-minutes': '30' })
  )
  expect(warm.main.code).toBe(0)
  expect(warm.main.outputs.kept).toBe('true')
  expect(server.machines()).toHaveLength(1)
  const id = warm.main.outputs['lease-id'] as string
  const run = await runMainAndPost(
    inputs({ id, run: 'echo reused-$CRABBOX_LEASE_ID' })
  )
  expect(run.main.log).toContain(`reused-${id}`)
  expect(server.machines()).toHaveLength(1)
  await runStep('main', inputs({ mode: 'stop', id }))
  expect(server.machines()).toHaveLength(0)
})

test('a sync of a few MiB needs many chunks and arrives intact', async () => {
  await writeFiles(repo, {
    'big/random.bin': randomBytes(3 * 1024 * 1024),
    'big/zeros.bin': Buffer.alloc(1024 * 1024)
  })
  commitAll(repo)
  server.clearRequests()
  const { main } = await runMainAndPost(inputs({ run: GUEST_LISTING_SCRIPT }))
  expect(main.code).toBe(0)
  expect(
    compareListings(await hostListing(repo), parseGuestListing(main.log))
  ).toEqual([])
  const execs = server.requests().filter((r) => r.path.endsWith('/exec'))
  expect(execs.length).toBeGreaterThan(40)
  expect(Math.max(...execs.map((r) => r.bodyBytes))).toBeLessThan(128 * 1024)
  expect(server.machines()).toHaveLength(0)
  await rm(join(repo, 'big'), { recursive: true })
  commitAll(repo)
})

test('secret-looking forwarded values are masked first; their file is private and gone before the script runs', async () => {
  const secret = 'forwarded-secret-value-123'
  const { main } = await runMainAndPost(
    inputs({
      sync: 'false',
      'env-forward': 'API_TOKEN\nPLAIN_*',
      run: [
        'echo "token=$API_TOKEN plain=$PLAIN_ONE"',
        'd=$(ls -d /tmp/smolvm-action-run-*)',
        'echo "dir-mode=$(stat -c %a "$d")"',
        'ls "$d"',
        'exit 5'
      ].join('\n')
    }),
    { env: { API_TOKEN: secret, PLAIN_ONE: 'visible' } }
  )
  expect(main.code).toBe(1)
  expect(main.log.indexOf(`::add-mask::${secret}`)).toBeGreaterThanOrEqual(0)
  expect(main.log.indexOf(`::add-mask::${secret}`)).toBeLessThan(
    main.log.indexOf(`token=${secret}`)
  )
  expect(main.log).toContain('API_TOKEN=set len=26 secret=true')
  expect(main.log).toContain('PLAIN_ONE=set')
  expect(main.log).toContain('plain=visible')
  expect(main.log).toContain('dir-mode=700')
  // Only the script is left in the private directory: the variables file
  // was removed before the script started.
  expect(main.log).toMatch(/\nscript\.sh\n/)
  expect(main.log).not.toMatch(/\nenv\.sh\n/)
  expect(server.machines()).toHaveLength(0)
})
