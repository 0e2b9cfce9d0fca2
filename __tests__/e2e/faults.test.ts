// The fault matrix: for each fault the API or the runner can produce, the
// step either succeeds or fails with a clear message, the key appears in no
// captured output, and the server keeps no sandbox that should be gone.

import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  test
} from '@jest/globals'
import { rm } from 'node:fs/promises'
import { startServer } from '../../server/server.js'
import type { SmolfleetServer } from '../../server/server.js'
import { runMainAndPost, runStep, waitFor } from '../../scripts/local-runner.js'
import type { StepResult } from '../../scripts/local-runner.js'
import { makeRepo } from '../helpers/repo.js'

const KEY = 'smk_e2e_fault_matrix_key_0002'
const SCOPELESS = 'smk_e2e_scopeless_key_0003'
let server: SmolfleetServer
let repo: string

function inputs(extra: Record<string, string> = {}): Record<string, string> {
  return {
    'api-key': KEY,
    'base-url': server.url,
    path: repo,
    run: 'echo ran-ok',
    ...extra
  }
}

/** Everything a step wrote that a person or a later step could see. */
function visible(r: StepResult): string {
  const log = r.log
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n')
  return [
    log,
    JSON.stringify(r.outputs),
    JSON.stringify(r.state),
    r.summary
  ].join('\n')
}

function expectNoSecret(...results: StepResult[]): void {
  for (const r of results) {
    expect(visible(r)).not.toContain(KEY)
    expect(visible(r)).not.toContain(SCOPELESS)
  }
}

beforeAll(async () => {
  server = await startServer({ apiKeys: [KEY], scopelessKeys: [SCOPELESS] })
  repo = await makeRepo({ 'a.txt': 'a\n', 'lib/b.sh': 'echo b\n' })
})

afterEach(() => {
  server.faults.clear()
  server.faults.maxBodyBytes = undefined
})

afterAll(async () => {
  await server.close()
  await rm(repo, { recursive: true, force: true })
})

describe('transient faults are retried and the step succeeds', () => {
  test('429 with Retry-After on create', async () => {
    server.faults.add({
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '1' },
      body: 'slow down',
      match: { method: 'POST', path: '^/v1/machines$' }
    })
    const { main, post } = await runMainAndPost(inputs())
    expect(main.code).toBe(0)
    expect(main.log).toMatch(
      /POST \/v1\/machines answered 429; retrying in 1\.0s \(attempt 2 of 5\)/
    )
    expect(
      server
        .requests()
        .filter(
          (r) =>
            r.method === 'POST' && r.path === '/v1/machines' && r.status === 201
        )
    ).toHaveLength(1)
    expectNoSecret(main, post)
    expect(server.machines()).toHaveLength(0)
  })

  test('503 on status polls and on sync uploads', async () => {
    server.faults.add({
      kind: 'status',
      status: 503,
      match: { method: 'GET', path: '^/v1/machines/[^/]+$' },
      times: 2
    })
    server.faults.add({
      kind: 'status',
      status: 503,
      match: { path: '/exec$' },
      times: 2
    })
    const { main } = await runMainAndPost(inputs())
    expect(main.code).toBe(0)
    expect(main.log).toContain('answered 503; retrying')
    expect(server.machines()).toHaveLength(0)
  })

  test('a dropped create answer is resolved by the pre-chosen name, not a second create', async () => {
    server.clearRequests()
    server.faults.add({
      kind: 'drop',
      when: 'after',
      match: { method: 'POST', path: '^/v1/machines$' }
    })
    const { main, post } = await runMainAndPost(inputs())
    expect(main.code).toBe(0)
    expect(main.log).toContain('Adopted')
    const creates = server
      .requests()
      .filter((r) => r.method === 'POST' && r.path === '/v1/machines')
    expect(creates).toHaveLength(1)
    expectNoSecret(main, post)
    expect(server.machines()).toHaveLength(0)
  })

  test('a create dropped before it was handled is sent again', async () => {
    server.faults.add({
      kind: 'drop',
      when: 'before',
      match: { method: 'POST', path: '^/v1/machines$' }
    })
    const { main } = await runMainAndPost(inputs())
    expect(main.code).toBe(0)
    expect(main.log).toContain('create is sent again')
    expect(server.machines()).toHaveLength(0)
  })

  test('dropped connections during the sync upload', async () => {
    server.faults.add({
      kind: 'drop',
      when: 'after',
      match: { path: '/exec$' },
      times: 2
    })
    const { main } = await runMainAndPost(inputs({ run: 'cat a.txt' }))
    expect(main.code).toBe(0)
    expect(main.log).toContain('\na\n')
    expect(server.machines()).toHaveLength(0)
  })

  test('a dropped script stream: the script is not run twice and its exit code is recovered', async () => {
    server.faults.add({
      kind: 'drop',
      when: 'after',
      match: { path: '/exec/stream$' }
    })
    const { main } = await runMainAndPost(
      inputs({
        run: 'echo run >> /workspace/runs.log; n=$(wc -l < /workspace/runs.log); echo "runs=$n"; exit 7',
        'keep-on-failure': 'true'
      })
    )
    expect(main.code).toBe(1)
    expect(main.outputs['exit-code']).toBe('7')
    expect(main.log).toContain('exited with 7')
    const machineId = main.outputs['machine-id'] as string
    const check = await runStep(
      'main',
      inputs({
        id: machineId,
        sync: 'false',
        run: 'cat /workspace/runs.log | wc -l'
      })
    )
    expect(check.log).toMatch(/^1$/m)
    await runStep('main', inputs({ mode: 'stop', id: machineId }))
    expect(server.machines()).toHaveLength(0)
  })

  test('slow start', async () => {
    server.faults.add({ kind: 'slowStart', ms: 2000 })
    const { main } = await runMainAndPost(inputs())
    expect(main.code).toBe(0)
    expect(server.machines()).toHaveLength(0)
  })

  test('request-size limit: upload chunks are split', async () => {
    await makeRepoBig()
    server.faults.maxBodyBytes = 40_000
    const { main } = await runMainAndPost(inputs({ run: 'sha256sum big.bin' }))
    expect(main.code).toBe(0)
    expect(server.requests().some((r) => r.status === 413)).toBe(true)
    expect(server.machines()).toHaveLength(0)
  })
})

async function makeRepoBig(): Promise<void> {
  const { writeFiles, commitAll } = await import('../helpers/repo.js')
  const { randomBytes } = await import('node:crypto')
  await writeFiles(repo, { 'big.bin': randomBytes(300_000) })
  commitAll(repo)
}

describe('faults that fail the step clearly and leave nothing behind', () => {
  test('error state while starting', async () => {
    server.faults.add({ kind: 'errorState' })
    const { main, post } = await runMainAndPost(inputs())
    expect(main.code).toBe(1)
    expect(main.log).toMatch(
      /::error::Sandbox mach-\S+ entered state "error" while starting; it was deleted\./
    )
    expectNoSecret(main, post)
    expect(server.machines()).toHaveLength(0)
  })

  test('never ready', async () => {
    server.faults.add({ kind: 'stuckStart' })
    const { main } = await runMainAndPost(inputs(), {
      env: { SMOLVM_ACTION_READY_TIMEOUT_MS: '1500' }
    })
    expect(main.code).toBe(1)
    expect(main.log).toMatch(
      /was not ready after 2s \(state "starting"\); it was deleted/
    )
    expect(server.machines()).toHaveLength(0)
  })

  test('bad key: 401 with its real body, no retry, no sandbox', async () => {
    server.clearRequests()
    const { main, post } = await runMainAndPost(
      inputs({ 'api-key': 'smk_wrong_key_123456' })
    )
    expect(main.code).toBe(1)
    expect(main.log).toContain(
      'answered 401: {"code":"unknown_key"}. The API key was refused'
    )
    expect(server.requests().filter((r) => r.method === 'POST')).toHaveLength(1)
    expect(post.log).toContain('Nothing to clean up')
    expect(visible(main)).not.toContain('smk_wrong_key_123456')
  })

  test('key without the scope: 403', async () => {
    const { main, post } = await runMainAndPost(
      inputs({ 'api-key': SCOPELESS })
    )
    expect(main.code).toBe(1)
    expect(main.log).toMatch(
      /answered 403: key lacks scope[^\n]*The API key lacks a permission/
    )
    expectNoSecret(main, post)
  })

  test('over quota: 422 is reported, not looped', async () => {
    const quota = await startServer({ apiKeys: [KEY], maxMachines: 0 })
    try {
      const { main } = await runMainAndPost({
        ...inputs(),
        'base-url': quota.url
      })
      expect(main.code).toBe(1)
      expect(main.log).toMatch(
        /answered 422: machine quota exceeded[^\n]*stop unused sandboxes/
      )
      expect(quota.requests().filter((r) => r.method === 'POST')).toHaveLength(
        1
      )
      expectNoSecret(main)
    } finally {
      await quota.close()
    }
  })

  test('an error body that reflects the key is redacted', async () => {
    server.faults.add({
      kind: 'status',
      status: 400,
      body: `{"message":"Bearer ${KEY} is not allowed","apiKey":"${KEY}"}`,
      match: { method: 'POST', path: '^/v1/machines$' }
    })
    const { main, post } = await runMainAndPost(inputs())
    expect(main.code).toBe(1)
    expect(main.log).toContain('Bearer [redacted] is not allowed')
    expectNoSecret(main, post)
  })

  test('script timeout: exit code 124', async () => {
    const { main } = await runMainAndPost(
      inputs({ run: 'echo start; sleep 100', 'timeout-minutes': '1' })
    )
    expect(main.code).toBe(1)
    expect(main.outputs['exit-code']).toBe('124')
    expect(main.log).toContain('timed out after 1 minute (timeout-minutes)')
    expect(server.machines()).toHaveLength(0)
  }, 150_000)

  test('missing executable', async () => {
    const { main } = await runMainAndPost(
      inputs({ run: 'no-such-tool --version' })
    )
    expect(main.code).toBe(1)
    expect(main.outputs['exit-code']).toBe('127')
    expect(main.log).toContain('a command was not found in the sandbox')
    expect(server.machines()).toHaveLength(0)
  })

  test('invalid API answers: create without an id, exec without an exit code', async () => {
    server.faults.add({
      kind: 'status',
      status: 201,
      body: '{"name":"x"}',
      match: { method: 'POST', path: '^/v1/machines$' }
    })
    const a = await runMainAndPost(inputs())
    expect(a.main.code).toBe(1)
    expect(a.main.log).toContain('without a usable machine record')

    server.faults.add({
      kind: 'status',
      status: 200,
      body: 'not json',
      match: { method: 'GET', path: '^/v1/machines/[^/]+$' }
    })
    const b = await runMainAndPost(inputs())
    expect(b.main.code).toBe(1)
    expect(b.main.log).toContain('something that is not JSON')

    server.faults.add({
      kind: 'status',
      status: 200,
      body: '{"stdout":"smolvm-action-prepared"}',
      match: { path: '/exec$' }
    })
    const c = await runMainAndPost(inputs({ sync: 'false' }))
    expect(c.main.code).toBe(1)
    expect(c.main.log).toContain('without an exit code')
    expect(server.machines()).toHaveLength(0)
  }, 60_000)
})

describe('cancellation in each phase', () => {
  const phases: [string, () => void, (log: string) => boolean][] = [
    [
      'create',
      () =>
        server.faults.add({
          kind: 'delay',
          ms: 3000,
          match: { method: 'POST', path: '^/v1/machines$' }
        }),
      (log) => log.includes('provisioning provider=smolvm')
    ],
    [
      'wait',
      () => server.faults.add({ kind: 'stuckStart' }),
      (log) =>
        log.includes('provisioning') &&
        server.requests().some((r) => r.method === 'GET')
    ],
    [
      'sync',
      () =>
        server.faults.add({
          kind: 'delay',
          ms: 4000,
          match: { path: '/exec$' },
          times: -1
        }),
      (log) => log.includes('::group::Sync')
    ],
    ['script', () => undefined, (log) => log.includes('script-started')]
  ]
  test.each(phases)(
    'SIGINT during %s, then the post step: no sandbox remains',
    async (_phase, arm, ready) => {
      server.clearRequests()
      arm()
      let signalled = 0
      const main = await runStep(
        'main',
        inputs({ run: 'echo script-started; sleep 60' }),
        {
          onStart: (child, log) => {
            void waitFor(() => ready(log()), 20_000).then(() => {
              signalled = Date.now()
              child.kill('SIGINT')
            })
          }
        }
      )
      expect(signalled).toBeGreaterThan(0)
      expect(Date.now() - signalled).toBeLessThan(7500)
      expect(main.code).not.toBe(0)
      server.faults.clear()
      const post = await runStep('post', inputs(), { state: main.state })
      expect(post.code).toBe(0)
      expectNoSecret(main, post)
      await waitFor(() => server.machines().length === 0, 10_000, 'no machines')
      expect(server.machines()).toHaveLength(0)
    },
    60_000
  )

  test('a crash (SIGKILL) during the script: the post step deletes by state', async () => {
    const main = await runStep(
      'main',
      inputs({ run: 'echo script-started; sleep 60' }),
      {
        onStart: (child, log) =>
          void waitFor(() => log().includes('script-started')).then(() =>
            child.kill('SIGKILL')
          )
      }
    )
    expect(main.signal).toBe('SIGKILL')
    expect(server.machines()).toHaveLength(1)
    const post = await runStep('post', inputs(), { state: main.state })
    expect(post.code).toBe(0)
    expect(post.log).toContain('Deleted sandbox')
    expect(server.machines()).toHaveLength(0)
  })
})

describe('the post step', () => {
  test('with no state', async () => {
    const post = await runStep('post', inputs(), { state: {} })
    expect(post.code).toBe(0)
    expect(post.log).toContain(
      'Nothing to clean up: this step created no sandbox'
    )
  })

  test('with only the name (the create answer never came back)', async () => {
    const warm = await runStep('main', inputs({ mode: 'warmup' }))
    const state = {
      'machine-name': warm.state['machine-name'] as string,
      'lease-id': warm.state['lease-id'] as string,
      cleanup: 'delete'
    }
    const post = await runStep('post', inputs(), { state })
    expect(post.code).toBe(0)
    expect(post.log).toContain('Deleted sandbox')
    expect(server.machines()).toHaveLength(0)
  })

  test('with a sandbox that is already gone', async () => {
    const state = {
      'machine-name': 'crabbox-x-000000000000',
      'machine-id': 'mach-0000000000000000',
      'lease-id': 'cbx_000000000000',
      cleanup: 'delete'
    }
    const post = await runStep('post', inputs(), { state })
    expect(post.code).toBe(0)
    expect(post.log).toContain('was already gone')
    expect(post.log).not.toContain('::warning::')
  })

  test('with the API down: a warning with the exact command, and the summary says so', async () => {
    const state = {
      'machine-name': 'crabbox-x-000000000001',
      'machine-id': 'mach-0000000000000001',
      'lease-id': 'cbx_000000000001',
      cleanup: 'delete'
    }
    const post = await runStep(
      'post',
      inputs({ 'base-url': 'http://127.0.0.1:9' }),
      { state }
    )
    expect(post.code).toBe(0)
    expect(post.log).toContain(
      '::warning::Could not delete sandbox cbx_000000000001'
    )
    expect(post.log).toContain(
      "crabbox stop --provider smolvm --id 'cbx_000000000001'"
    )
    expect(post.summary).toContain('could not delete sandbox')
    expect(post.summary).toContain('mode: stop')
    expectNoSecret(post)
  }, 60_000)
})

test('eight runs at once get distinct names and delete only their own sandboxes', async () => {
  const env = { GITHUB_RUN_ID: '4242', GITHUB_RUN_ATTEMPT: '1' }
  const runs = await Promise.all(
    Array.from({ length: 8 }, async (_, i) =>
      runMainAndPost(inputs({ slug: 'matrix', run: `echo leg-${i}` }), { env })
    )
  )
  for (const [i, r] of runs.entries()) {
    expect(r.main.code).toBe(0)
    expect(r.main.log).toContain(`leg-${i}`)
    expectNoSecret(r.main, r.post)
  }
  const leases = new Set(runs.map((r) => r.main.outputs['lease-id']))
  const slugs = new Set(runs.map((r) => r.main.outputs.slug))
  expect(leases.size).toBe(8)
  expect(slugs.size).toBe(8)
  for (const slug of slugs)
    expect(slug).toMatch(/^matrix-[0-9a-f]{4}-gh4242-1$/)
  expect(server.machines()).toHaveLength(0)
}, 120_000)

describe('found by a new user', () => {
  test('an upload refused with a 500 fails the step cleanly; keep-on-failure keeps the sandbox', async () => {
    await makeRepoBig()
    server.faults.add({
      kind: 'status',
      status: 500,
      body: 'internal error',
      match: { path: '/exec$' },
      times: -1
    })
    const kept = await runMainAndPost(inputs({ 'keep-on-failure': 'true' }))
    expect(kept.main.code).toBe(1)
    expect(kept.main.log).toContain('::error::')
    expect(kept.main.log).toContain('answered 500: internal error')
    expect(kept.main.log).not.toContain('node:internal')
    expect(kept.main.outputs.kept).toBe('true')
    expect(kept.main.log).toMatch(
      /::warning::keep-on-failure: kept sandbox cbx_/
    )
    expect(kept.main.log).toMatch(/smolvm run summary sync=\S+ command=0s/)
    expect(server.machines()).toHaveLength(1)
    const deleted = await runMainAndPost(inputs())
    expect(deleted.main.code).toBe(1)
    expect(deleted.main.log).toContain('released lease=')
    server.faults.clear()
    await runStep(
      'main',
      inputs({ mode: 'stop', id: kept.main.outputs['lease-id'] as string })
    )
    expect(server.machines()).toHaveLength(0)
  })

  test('a cancelled keep-on-failure run is deleted, not kept', async () => {
    const main = await runStep(
      'main',
      inputs({
        'keep-on-failure': 'true',
        sync: 'false',
        run: 'echo script-started; sleep 60'
      }),
      {
        onStart: (child, log) =>
          void waitFor(() => log().includes('script-started')).then(() =>
            child.kill('SIGINT')
          )
      }
    )
    expect(main.code).not.toBe(0)
    // Commands are resumed first, so the cancellation warning is an annotation.
    expect(main.log.lastIndexOf('::stop-commands::')).toBeLessThan(
      main.log.indexOf('::warning::Received SIGINT')
    )
    await runStep('post', inputs(), { state: main.state })
    expect(server.machines()).toHaveLength(0)
  })

  test('inside a workflow run, the slug a step asked for finds its sandbox; a typo is a warning', async () => {
    const env = { GITHUB_RUN_ID: '777', GITHUB_RUN_ATTEMPT: '1' }
    const warm = await runStep(
      'main',
      inputs({ mode: 'warmup', slug: 'ci-box' }),
      { env }
    )
    expect(warm.outputs.slug).toMatch(/^ci-box-[0-9a-f]{4}-gh777-1$/)
    const status = await runStep(
      'main',
      inputs({ mode: 'status', id: 'CI Box' }),
      { env }
    )
    expect(status.outputs['lease-id']).toBe(warm.outputs['lease-id'])
    const typo = await runStep('main', inputs({ mode: 'stop', id: 'ci-bx' }), {
      env
    })
    expect(typo.code).toBe(0)
    expect(typo.log).toContain('::warning::No sandbox matches "ci-bx"')
    expect(server.machines()).toHaveLength(1)
    const stop = await runStep('main', inputs({ mode: 'stop', id: 'ci-box' }), {
      env
    })
    expect(stop.log).toContain(
      `released lease=${warm.outputs['lease-id'] as string}`
    )
    expect(server.machines()).toHaveLength(0)
  })

  test('errors that point at the fix', async () => {
    const noKey = await runStep('main', {
      'base-url': server.url,
      path: repo,
      run: 'true'
    })
    expect(noKey.log).toContain('api-key: ${{ secrets.SMOLMACHINES_API_KEY }}')
    const down = await runMainAndPost(
      inputs({ 'base-url': 'http://127.0.0.1:9' })
    )
    expect(down.main.log).toMatch(
      /POST \/v1\/machines failed: ECONNREFUSED[^\n]*check base-url/
    )
    expect(down.post.log).toContain('Nothing to clean up')
    const cwd = await runMainAndPost(inputs({ 'working-directory': 'nope' }))
    expect(cwd.main.log).toContain(
      'the directory /workspace/nope does not exist in the sandbox; check working-directory'
    )
    const own124 = await runMainAndPost(
      inputs({ sync: 'false', run: 'exit 124' })
    )
    expect(own124.main.log).toContain(
      '::error::The script exited with code 124.'
    )
    server.clearRequests()
    const big = await runStep(
      'main',
      inputs({ run: `echo ${'x'.repeat(100_000)}` })
    )
    expect(big.log).toContain('at most 98304 fit in one call')
    expect(server.requests()).toEqual([])
    expect(server.machines()).toHaveLength(0)
  }, 60_000)
})
