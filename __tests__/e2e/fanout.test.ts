// A fan-out as fanout.yml runs it, step by step with the bundled action
// against the local smolfleet server: mode legs computes 6 legs and the
// fan-out key, each leg is a run step writing its result file (2 fail and
// are kept on failure, 1 is handed over with keep: true) into its own
// artifact folder, mode merge merges the files, and the cleanup job stops
// this fan-out's sandboxes by run marker and slug prefix, sparing a second
// fan-out of the same run. The sweeper then handles what is left.

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
  slug: string
  run: string
  keep?: boolean
  'keep-on-failure'?: boolean
}

interface MergedLeg {
  leg: string
  attempt: number | null
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

/** Where the merge job downloads a fan-out's results. */
const downloads = (key: string): string => join(results, key)

/** Where download-artifact puts a leg's result: one folder per artifact. */
const artifactFile = (key: string, leg: string, attempt = 1): string =>
  join(downloads(key), `smolvm-${key}-${leg}-${attempt}`, `${leg}.json`)

/** A leg's run step with the inputs and environment fanout.yml gives it. */
async function runLeg(
  m: MatrixEntry,
  key: string,
  env: Record<string, string> = RUN
): ReturnType<typeof runMainAndPost> {
  return runMainAndPost(
    api({
      run: `echo "leg=$SMOLVM_LEG index=$SMOLVM_LEG_INDEX total=$SMOLVM_LEG_TOTAL"\n${m.run}`,
      slug: m.slug,
      keep: m.keep === true ? 'true' : 'false',
      'keep-on-failure': m['keep-on-failure'] === true ? 'true' : 'false',
      'env-forward': 'SMOLVM_LEG*',
      'result-file': artifactFile(key, m.leg, Number(env.GITHUB_RUN_ATTEMPT)),
      leg: m.leg
    }),
    {
      env: {
        ...env,
        SMOLVM_LEG: m.leg,
        SMOLVM_LEG_INDEX: String(m.index),
        SMOLVM_LEG_TOTAL: String(m.total)
      }
    }
  )
}

async function legsOf(
  legs: unknown
): Promise<{ key: string; legs: string; include: MatrixEntry[] }> {
  const step = await runStep('main', {
    mode: 'legs',
    legs: JSON.stringify(legs)
  })
  expect(step.code).toBe(0)
  const key = step.outputs.key as string
  expect(key).toMatch(/^[0-9a-f]{6}$/)
  const matrix = JSON.parse(step.outputs.legs as string) as {
    include: MatrixEntry[]
  }
  return { key, legs: step.outputs.legs as string, include: matrix.include }
}

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

test('6 legs, 2 failures, 1 handed over: merge, cleanup by fan-out, sweep', async () => {
  // Sandboxes that are not this run's to clean up: another run's, and one
  // made outside any workflow run (as the Crabbox CLI would).
  const otherRun = await runMainAndPost(api({ mode: 'warmup' }), {
    env: { GITHUB_RUN_ID: '4242000002', GITHUB_RUN_ATTEMPT: '1' }
  })
  const outside = await runMainAndPost(api({ mode: 'warmup' }))
  expect([otherRun.main.code, outside.main.code]).toEqual([0, 0])

  // Another fan-out of the same run, still going: its failed leg is kept
  // on failure until its own cleanup.
  const other = await legsOf([
    { name: 'slow', run: 'exit 1', 'keep-on-failure': true }
  ])
  const otherLeg = await runLeg(other.include[0]!, other.key)
  expect(otherLeg.main.code).toBe(1)

  // The legs job: no API key needed.
  const { key, legs: legsOutput, include } = await legsOf(LEGS)
  expect(key).not.toBe(other.key)
  expect(include.map((l) => [l.leg, l.index, l.total, l.slug])).toEqual(
    LEGS.map((l, i) => [l.name, i, 6, `fo${key}-${l.name}`])
  )

  // The leg jobs, at once as a matrix runs them.
  const legs = await Promise.all(include.map(async (m) => runLeg(m, key)))
  const byLeg = new Map(include.map((m, i) => [m.leg, legs[i]!]))
  for (const [leg, { main, post }] of byLeg) {
    const index = include.findIndex((m) => m.leg === leg)
    expect(main.log).toContain(`leg=${leg} index=${index} total=6`)
    expect(main.outputs.slug).toMatch(
      new RegExp(
        `^fo${key}-${leg}-[0-9a-f]{4}-gh4242000001-1${leg === 'handed-over' ? '-keep' : ''}$`
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
    legs: legsOutput,
    'results-dir': downloads(key)
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
  expect(merged.map((l) => l.attempt)).toEqual([1, 1, 1, 1, 1, 1])
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
  await rm(artifactFile(key, 'e2e'))
  const partial = await runStep('main', {
    mode: 'merge',
    legs: legsOutput,
    'results-dir': downloads(key)
  })
  expect(partial.code).toBe(1)
  expect(partial.log).toContain(
    '3 of 6 legs failed or left no result: exit-3, no-file, e2e.'
  )
  expect(partial.summary).toContain('6 legs: 3 succeeded, 2 failed, 1 missing')

  // Before the cleanup: the two kept failures, the handed-over sandbox, the
  // other fan-out's kept failure and the two that belong to nobody in this
  // run.
  const thisRun = (): string[] =>
    server
      .machines()
      .filter((m) => runOf(m.name) === RUN.GITHUB_RUN_ID)
      .map((m) => m.name)
      .sort()
  const nameOf = (step: StepResult): string =>
    `crabbox-${step.outputs.slug}-${(step.outputs['lease-id'] as string).slice(4)}`
  expect(thisRun()).toHaveLength(4)
  expect(server.machines()).toHaveLength(6)

  // The cleanup job, as fanout.yml runs it, first as a dry run: it lists,
  // it deletes nothing.
  const cleanupInputs = api({
    mode: 'stop',
    'stop-run': 'current',
    'slug-prefix': `fo${key}-`
  })
  server.clearRequests()
  const dry = await runStep(
    'main',
    { ...cleanupInputs, 'dry-run': 'true' },
    { env: RUN }
  )
  expect(dry.code).toBe(0)
  expect(leaseIds(dry)).toEqual([lease('exit-3'), lease('no-file')].sort())
  expect(server.requests().filter((r) => r.method === 'DELETE')).toEqual([])
  expect(server.machines()).toHaveLength(6)
  expect(dry.summary).toContain('Would stop 2 sandbox(es).')

  const cleanup = await runStep('main', cleanupInputs, { env: RUN })
  expect(cleanup.code).toBe(0)
  expect(leaseIds(cleanup)).toEqual(leaseIds(dry))
  // The other fan-out's sandbox is still there, for its own cleanup.
  expect(thisRun()).toEqual(
    [nameOf(byLeg.get('handed-over')!.main), nameOf(otherLeg.main)].sort()
  )
  const otherCleanup = await runStep(
    'main',
    api({
      mode: 'stop',
      'stop-run': 'current',
      'slug-prefix': `fo${other.key}-`
    }),
    { env: RUN }
  )
  expect(leaseIds(otherCleanup)).toEqual([
    otherLeg.main.outputs['lease-id'] as string
  ])
  expect(thisRun()).toEqual([nameOf(byLeg.get('handed-over')!.main)])
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

test('a re-run of a failed leg wins over its first attempt in the merge', async () => {
  const { key, legs, include } = await legsOf([
    { name: 'flaky', run: 'test "$GITHUB_RUN_ATTEMPT" = 2' }
  ])
  const leg = include[0]!
  const first = await runLeg(leg, key)
  expect(first.main.code).toBe(1)
  // "Re-run failed jobs": the same key, the next attempt, a new artifact.
  const env = { ...RUN, GITHUB_RUN_ATTEMPT: '2' }
  const second = await runMainAndPost(
    api({
      run: leg.run,
      slug: leg.slug,
      'env-forward': 'GITHUB_RUN_ATTEMPT',
      'result-file': artifactFile(key, 'flaky', 2),
      leg: 'flaky'
    }),
    { env }
  )
  expect(second.main.code).toBe(0)
  const merge = await runStep('main', {
    mode: 'merge',
    legs,
    'results-dir': downloads(key)
  })
  expect(merge.code).toBe(0)
  const [merged] = JSON.parse(merge.outputs.results as string) as MergedLeg[]
  expect(merged).toMatchObject({
    leg: 'flaky',
    attempt: 2,
    outcome: 'success',
    leaseId: second.main.outputs['lease-id']
  })
  expect(merge.log).not.toContain('More than one result')
  expect(merge.summary).toContain('1 leg: 1 succeeded, 0 failed')
})

test('a leg whose inputs are refused, or whose key is, still leaves a result', async () => {
  const dir = join(results, 'refused')
  const bad = await runStep(
    'main',
    api({
      run: 'true',
      cpus: 'lots',
      'result-file': join(dir, 'bad-cpus.json')
    }),
    { env: RUN }
  )
  expect(bad.code).toBe(1)
  const refused = await runStep(
    'main',
    {
      ...api({ run: 'true', slug: 'fo123abc-nokey' }),
      'api-key': 'smk_wrong_key_000000001',
      'result-file': join(dir, 'x', 'no-key.json'),
      leg: 'no-key'
    },
    { env: RUN }
  )
  expect(refused.code).toBe(1)
  const check = await runStep('main', {
    mode: 'merge',
    legs: 'bad-cpus\nno-key',
    'results-dir': dir
  })
  const [cpus, key] = JSON.parse(
    check.outputs.results as string
  ) as (MergedLeg & {
    error: string
    slug: string | null
  })[]
  expect(cpus).toMatchObject({
    leg: 'bad-cpus',
    outcome: 'failure',
    attempt: 1
  })
  expect(cpus!.error).toContain('Input cpus "lots" must be a whole number')
  // The create call was refused: no lease to show, the step's hint kept.
  expect(key).toMatchObject({
    leg: 'no-key',
    outcome: 'failure',
    leaseId: null,
    slug: null
  })
  expect(key!.error).toContain('check api-key')
  expect(refused.log).toContain(key!.error)
  expect(check.summary).toContain('| no-key |  |')
})
