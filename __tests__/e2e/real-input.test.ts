// The main job on real input: the bundled action syncs this repository's
// own checkout, and a scratch repository with several thousand files of an
// installed node_modules, and the guest's sha256 and exec bit of every file
// equal the host's.

import { afterAll, beforeAll, expect, test } from '@jest/globals'
import { cp, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { startServer } from '../../server/server.js'
import type { SmolfleetServer } from '../../server/server.js'
import { runMainAndPost } from '../../scripts/local-runner.js'
import {
  GUEST_LISTING_SCRIPT,
  compareListings,
  hostListing,
  parseGuestListing
} from '../../scripts/verify-sync.js'
import { commitAll, git, makeRepo } from '../helpers/repo.js'

const KEY = 'smk_e2e_real_input_key_0004'
let server: SmolfleetServer
let scratch: string

beforeAll(async () => {
  server = await startServer({ apiKeys: [KEY] })
  scratch = await makeRepo({ 'README.md': '# node_modules fixture\n' })
  for (const pkg of [
    'zod',
    'undici',
    '@actions',
    '@typescript-eslint',
    '.bin'
  ]) {
    await cp(resolve('node_modules', pkg), join(scratch, 'node_modules', pkg), {
      recursive: true,
      verbatimSymlinks: true
    })
  }
  commitAll(scratch)
})

afterAll(async () => {
  await server.close()
  await rm(scratch, { recursive: true, force: true })
})

async function syncAndCompare(path: string, exclude = ''): Promise<number> {
  const { main, post } = await runMainAndPost({
    'api-key': KEY,
    'base-url': server.url,
    path,
    exclude,
    run: GUEST_LISTING_SCRIPT
  })
  expect(main.code).toBe(0)
  expect(post.code).toBe(0)
  const host = await hostListing(path, exclude ? [exclude] : [])
  expect(compareListings(host, parseGuestListing(main.log))).toEqual([])
  expect(server.machines()).toHaveLength(0)
  return host.size
}

test('this repository checkout', async () => {
  const files = await syncAndCompare(resolve('.'))
  expect(files).toBeGreaterThan(50)
}, 120_000)

test('several thousand files of an installed node_modules, re-included with !node_modules', async () => {
  const files = await syncAndCompare(scratch, '!node_modules')
  // Independent of the sync's own file list: every file git tracks arrived.
  const tracked = git(scratch, 'ls-files', '-z').split('\0').filter(Boolean)
  expect(tracked.length).toBeGreaterThan(2500)
  expect(files).toBe(tracked.length)
}, 300_000)
