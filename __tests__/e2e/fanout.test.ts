// A fan-out as fanout.yml runs it, step by step with the bundled action
// against the local smolfleet server: mode legs computes 6 legs, each leg
// is a run step writing its result file (2 fail and are kept on failure, 1
// is handed over with keep: true), mode merge merges the files, and the
// cleanup job stops by run marker. The sweeper then handles what is left.

import { afterAll, beforeAll, expect, test } from '@jest/globals'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../../server/server.js'
import type { SmolfleetServer } from '../../server/server.js'
import { runMainAndPost, runStep, waitFor } from '../../scripts/local-runner.js'
import type { StepResult } from '../../scripts/local-runner.js'
import { commitAll, makeRepo } from '../helpers/repo.js'

const KEY = 'smk_e2e_fanout_key_0001'
const RUN = { GITHUB_RUN_ID: '4242000001', GITHUB_RUN_ATTEMPT: '1' }

interface MatrixEntry {
  leg: string
  index: number
  total: number
  run: string
  keep?: boolean
  'keep-on-failure'?: boolean
}

interface MergedLeg {
  leg: string
  index: number
  leaseId: string | null
  exitCode: number | null
  kept: boolean | null
  outcome: string
  failed: boolean
  syncMs: number | null
  commandMs: number | null
}

// The legs as a caller of fanout.yml would write them.
const LEGS = [
  { name: 'unit', run: 'test -f src/app.sh && echo unit-ok' },
  { name: 'lint', run: 'echo lint-ok' },
  { name: 'exit-3', run: 'echo failing; exit 3', 'keep-on-failure': true },
  {
    name: 'no-file',
    run: 'test -f no-such-file',
    'keep-on-failure': true
  },
  { name: 'handed-over', run: 'echo kept-on-purpose', keep: true },
  { name: 'e2e', run: 'echo e2e-ok' }
]

let server: SmolfleetServer
let repo: string
let results: string

function api(extra: Record<string, string>): Record<string, string> {
  return { 'api-key': KEY, 'base-url': server.url, path: repo, ...extra }
}

const leaseIds = (step: StepResult): string[] =>
  (JSON.parse(step.outputs.leases ?? '[]') as string[]).sort()

const runOf = (name: string): string | undefined =>
  /-gh(\d+)-\d+(-keep)?-[0-9a-f]{12}$/.exec(name)?.[1]

beforeAll(async () => {
  server = await startServer({ apiKeys: [KEY] })
  repo = await makeRepo({ 'src/app.sh': 'echo app\n', 'README.md': '# x\n' })
  commitAll(repo)
  results = await mkdtemp(join(tmpdir(), 'smolvm-fanout-results-'))
})

afterAll(async () => {
  await server.close()
  await rm(repo, { recursive: true, force: true })
  await rm(results, { recursive: true, force: true })
})

test('6 legs, 2 failures, 1 handed over: merge, cleanup by run, sweep', async () => {
  // Sandboxes that are not this run's to clean up: another run's, and one
  // made outside any workflow run (as the Crabbox CLI would).
  const otherRun = await runMainAndPost(api({ mode: 'warmup' }), {
    env: { GITHUB_RUN_ID: '4242000002', GITHUB_RUN_ATTEMPT: '1' }
  })
  const outside = await runMainAndPost(api({ mode: 'warmup' }))
  expect([otherRun.main.code, outside.main.code]).toEqual([0, 0])

  // The legs job: no API key needed.
  const legsStep = await runStep('main', {
    mode: 'legs',
    legs: JSON.stringify(LEGS)
  })
  expect(legsStep.code).toBe(0)
  const matrix = JSON.parse(legsStep.outputs.legs as string) as {
    include: MatrixEntry[]
  }
  expect(matrix.include.map((l) => [l.leg, l.index, l.total])).toEqual(
    LEGS.map((l, i) => [l.name, i, 6])
  )

  // The leg jobs, at once as a matrix runs them, with the inputs and
  // environment fanout.yml gives each leg's step.
  const legs = await Promise.all(
    matrix.include.map(async (m) =>
      runMainAndPost(
        api({
          run: `echo "leg=$SMOLVM_LEG index=$SMOLVM_LEG_INDEX total=$SMOLVM_LEG_TOTAL"\n${m.run}`,
          slug: m.leg,
          keep: m.keep ? 'true' : 'false',
          'keep-on-failure': m['keep-on-failure'] ? 'true' : 'false',
          'env-forward': 'SMOLVM_LEG*',
          'result-file': join(results, `${m.leg}.json`),
          leg: m.leg
        }),
        {
          env: {
            ...RUN,
            SMOLVM_LEG: m.leg,
            SMOLVM_LEG_INDEX: String(m.index),
            SMOLVM_LEG_TOTAL: String(m.total)
          }
        }
      )
    )
  )
  const byLeg = new Map(matrix.include.map((m, i) => [m.leg, legs[i]!]))
  for (const [leg, { main, post }] of byLeg) {
    const index = matrix.include.findIndex((m) => m.leg === leg)
    expect(main.log).toContain(`leg=${leg} index=${index} total=6`)
    expect(main.outputs.slug).toMatch(
      new RegExp(
        `^${leg}-[0-9a-f]{4}-gh4242000001-1${leg === 'handed-over' ? '-keep' : ''}$`
      )
    )
    expect(main.log).toContain(`result of leg ${leg}`)
    expect(post.code).toBe(0)
  }
  expect(byLeg.get('unit')!.main.log).toContain('unit-ok')
  expect(
    [...byLeg].map(([leg, { main }]) => [
      leg,
      main.code,
      main.outputs['exit-code']
    ])
  ).toEqual([
    ['unit', 0, '0'],
    ['lint', 0, '0'],
    ['exit-3', 1, '3'],
    ['no-file', 1, '1'],
    ['handed-over', 0, '0'],
    ['e2e', 0, '0']
  ])

  // The merge job, from the legs output and the downloaded result files.
  const merge = await runStep('main', {
    mode: 'merge',
    legs: legsStep.outputs.legs as string,
    'results-dir': results
  })
  expect(merge.code).toBe(1)
  expect(merge.log).toContain(
    '::error::2 of 6 legs failed or left no result: exit-3, no-file.'
  )
  const merged = JSON.parse(merge.outputs.results as string) as MergedLeg[]
  expect(
    merged.map((l) => [l.leg, l.index, l.exitCode, l.outcome, l.failed, l.kept])
  ).toEqual([
    ['unit', 0, 0, 'success', false, false],
    ['lint', 1, 0, 'success', false, false],
    ['exit-3', 2, 3, 'failure', true, true],
    ['no-file', 3, 1, 'failure', true, true],
    ['handed-over', 4, 0, 'success', false, true],
    ['e2e', 5, 0, 'success', false, false]
  ])
  for (const l of merged) {
    const { main } = byLeg.get(l.leg)!
    expect(l.leaseId).toBe(main.outputs['lease-id'])
    expect(l.syncMs).toBe(Number(main.outputs['sync-ms']))
    expect(l.commandMs).toBe(Number(main.outputs['command-ms']))
  }
  const lease = (leg: string): string =>
    byLeg.get(leg)!.main.outputs['lease-id'] as string
  expect(merge.summary).toContain('6 legs: 4 succeeded, 2 failed')
  expect(merge.summary).toContain(
    '| Leg | Lease | Exit code | Sync | Command | Outcome | Sandbox |'
  )
  expect(merge.summary).toMatch(
    new RegExp(
      `\\| exit-3 \\| \`${lease('exit-3')}\` \\| 3 \\| \\S+ \\| \\S+ \\| \\*\\*failure\\*\\* \\| kept \\|`
    )
  )
  expect(merge.summary).toMatch(
    new RegExp(
      `\\| unit \\| \`${lease('unit')}\` \\| 0 \\| \\S+ \\| \\S+ \\| success \\| deleted \\|`
    )
  )
  expect(merge.summary).toContain('- exit-3: The script exited with code 3.')

  // A leg whose job was cancelled before it wrote a result counts as failed.
  await rm(join(results, 'e2e.json'))
  const partial = await runStep('main', {
    mode: 'merge',
    legs: legsStep.outputs.legs as string,
    'results-dir': results
  })
  expect(partial.code).toBe(1)
  expect(partial.log).toContain(
    '3 of 6 legs failed or left no result: exit-3, no-file, e2e.'
  )
  expect(partial.summary).toContain('6 legs: 3 succeeded, 2 failed, 1 missing')

  // Before the cleanup: the two kept failures, the handed-over sandbox and
  // the two that belong to nobody in this run.
  const thisRun = (): string[] =>
    server
      .machines()
      .filter((m) => runOf(m.name) === RUN.GITHUB_RUN_ID)
      .map((m) => m.name)
      .sort()
  expect(thisRun()).toHaveLength(3)
  expect(server.machines()).toHaveLength(5)

  // The cleanup job, first as a dry run: it lists, it deletes nothing.
  server.clearRequests()
  const dry = await runStep(
    'main',
    api({ mode: 'stop', 'stop-run': 'current', 'dry-run': 'true' }),
    { env: RUN }
  )
  expect(dry.code).toBe(0)
  expect(leaseIds(dry)).toEqual([lease('exit-3'), lease('no-file')].sort())
  expect(server.requests().filter((r) => r.method === 'DELETE')).toEqual([])
  expect(server.machines()).toHaveLength(5)
  expect(dry.summary).toContain('Would stop 2 sandbox(es).')

  const cleanup = await runStep(
    'main',
    api({ mode: 'stop', 'stop-run': 'current' }),
    { env: RUN }
  )
  expect(cleanup.code).toBe(0)
  expect(leaseIds(cleanup)).toEqual(leaseIds(dry))
  expect(thisRun()).toEqual([
    `crabbox-${byLeg.get('handed-over')!.main.outputs.slug}-${lease('handed-over').slice(4)}`
  ])
  const survivors = server.machines().map((m) => m.name)
  expect(survivors).toHaveLength(3)
  expect(survivors).toContain(
    `crabbox-${otherRun.main.outputs.slug}-${(otherRun.main.outputs['lease-id'] as string).slice(4)}`
  )

  // The sweeper: every sandbox made in a workflow run, kept or not, older
  // than the age; never the one made outside a run.
  const sweepInputs = api({
    mode: 'stop',
    'older-than': '0s',
    'dry-run': 'true'
  })
  const sweepDry = await runStep('main', sweepInputs, {
    env: { GITHUB_RUN_ID: '77' }
  })
  const swept = [
    lease('handed-over'),
    otherRun.main.outputs['lease-id'] as string
  ]
  expect(leaseIds(sweepDry)).toEqual(swept.sort())
  expect(server.machines()).toHaveLength(3)
  const sweep = await runStep('main', { ...sweepInputs, 'dry-run': 'false' })
  expect(sweep.code).toBe(0)
  expect(leaseIds(sweep)).toEqual(swept.sort())
  expect(sweep.summary).toContain(lease('handed-over'))
  expect(server.machines().map((m) => m.name)).toEqual([
    `crabbox-${outside.main.outputs.slug}-${(outside.main.outputs['lease-id'] as string).slice(4)}`
  ])
})

test('a run step that fails before it creates a sandbox still writes its result', async () => {
  const file = join(results, 'broken', 'sync-root.json')
  const { main } = await runMainAndPost(
    api({ run: 'true', path: join(repo, 'no-such-dir'), 'result-file': file }),
    { env: RUN }
  )
  expect(main.code).toBe(1)
  const check = await runStep('main', {
    mode: 'merge',
    legs: 'sync-root',
    'results-dir': join(results, 'broken')
  })
  const [leg] = JSON.parse(check.outputs.results as string) as (MergedLeg & {
    error: string
  })[]
  expect(leg).toMatchObject({
    leg: 'sync-root',
    outcome: 'failure',
    failed: true,
    leaseId: null,
    exitCode: null
  })
  expect(leg!.error).toContain('no-such-dir')
})

test('a cancelled leg records that it was cancelled, and its sandbox is deleted', async () => {
  const file = join(results, 'cancel', 'slow.json')
  const { main, post } = await runMainAndPost(
    api({
      run: 'echo slow-started; sleep 60',
      'result-file': file,
      leg: 'slow'
    }),
    {
      env: RUN,
      onStart: (child, log) =>
        void waitFor(() => log().includes('slow-started')).then(() =>
          child.kill('SIGINT')
        )
    }
  )
  expect(main.code).toBe(1)
  const result = JSON.parse(await readFile(file, 'utf8')) as MergedLeg
  expect(result).toMatchObject({
    leg: 'slow',
    outcome: 'cancelled',
    leaseId: main.outputs['lease-id']
  })
  expect(post.code).toBe(0)
  await waitFor(
    () =>
      !server.machines().some((m) => m.name.includes(result.leaseId!.slice(4))),
    10_000,
    'the cancelled leg to be deleted'
  )
})
