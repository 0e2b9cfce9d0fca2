// The fan-out logic that runs outside GitHub: computing legs, leg results,
// merging them, and selecting sandboxes by workflow run and age.

import { afterEach, describe, expect, jest, test } from '@jest/globals'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readResultDir, writeResultFile } from '../../src/fanout/files.js'
import {
  legSlug,
  listLegs,
  newFanoutKey,
  readLegs,
  toMatrix
} from '../../src/fanout/legs.js'
import {
  markdownTable,
  mergeHeadline,
  mergeResults
} from '../../src/fanout/merge.js'
import { parseResult, resultFromOutputs } from '../../src/fanout/result.js'
import type { LegResult } from '../../src/fanout/result.js'
import { getInputs } from '../../src/inputs.js'
import { SLUG_MAX, newIdentity } from '../../src/lifecycle/names.js'
import { toEntries } from '../../src/modes/list.js'
import { selectEntries } from '../../src/modes/stop.js'
import type { MachineRecord } from '../../src/smolfleet/types.js'

describe('legs', () => {
  test('shards: N gives N legs with index 0..N-1 and the total', () => {
    const { legs, problems } = readLegs('3', '')
    expect(problems).toEqual([])
    expect(toMatrix(legs, 'abc123')).toEqual({
      include: [
        { leg: 'shard-1', index: 0, total: 3, slug: 'foabc123-shard-1' },
        { leg: 'shard-2', index: 1, total: 3, slug: 'foabc123-shard-2' },
        { leg: 'shard-3', index: 2, total: 3, slug: 'foabc123-shard-3' }
      ]
    })
  })

  test.each([
    ['0', 'must be a whole number from 1 to 256'],
    ['257', 'must be a whole number from 1 to 256'],
    ['2.5', 'must be a whole number'],
    ['four', 'Input shards "four"']
  ])('shards %s is refused', (shards, message) => {
    const { legs, problems } = readLegs(shards, '')
    expect(legs).toEqual([])
    expect(problems.join()).toContain(message)
  })

  test('one leg name per line, comments and blanks skipped', () => {
    const { legs } = readLegs('', 'unit\n\n# slow ones\ne2e\r\nlint\n')
    expect(legs.map((l) => [l.name, l.index, l.total])).toEqual([
      ['unit', 0, 3],
      ['e2e', 1, 3],
      ['lint', 2, 3]
    ])
  })

  test('a JSON array of names and objects keeps per-leg fields', () => {
    const text = JSON.stringify([
      'plain',
      { name: 'alpine-3.20', image: 'alpine:3.20', cpus: 4, keep: true }
    ])
    expect(toMatrix(readLegs('', text).legs, 'abc123')).toEqual({
      include: [
        { leg: 'plain', index: 0, total: 2, slug: 'foabc123-plain' },
        {
          leg: 'alpine-3.20',
          index: 1,
          total: 2,
          slug: 'foabc123-alpine-3-20',
          image: 'alpine:3.20',
          cpus: 4,
          keep: true
        }
      ]
    })
  })

  test("mode legs' own output reads back to the same legs", () => {
    const first = readLegs('', '[{"name":"a","image":"x"},"b"]').legs
    const again = listLegs(JSON.stringify(toMatrix(first, 'abc123')))
    expect(again.problems).toEqual([])
    expect(again.legs).toEqual(first)
    expect(
      readLegs('', JSON.stringify(toMatrix(readLegs('4', '').legs, 'abc123')))
        .legs
    ).toEqual(readLegs('4', '').legs)
  })

  test('each leg asks for a slug that starts with the fan-out key', () => {
    expect(newFanoutKey()).toMatch(/^[0-9a-f]{6}$/)
    expect(newFanoutKey()).not.toBe(newFanoutKey())
    expect(legSlug('abc123', 'Alpine_3.20')).toBe('foabc123-alpine-3-20')
    // 9 characters of prefix leave 32 of a 40-character name.
    const long = legSlug('abc123', `${'x'.repeat(31)}-${'y'.repeat(8)}`)
    expect(long).toBe(`foabc123-${'x'.repeat(31)}`)
    expect(long.length).toBeLessThanOrEqual(SLUG_MAX)
    expect(legSlug('abc123', 'y'.repeat(40))).toHaveLength(SLUG_MAX)
  })

  test('per-leg settings are checked; other fields only warn', () => {
    const ok = readLegs(
      '',
      JSON.stringify([
        {
          name: 'a',
          image: 'alpine:3.20',
          cpus: 64,
          'memory-mb': 128,
          run: 'make',
          keep: false,
          'keep-on-failure': true,
          suite: 'fast'
        }
      ])
    )
    expect(ok.problems).toEqual([])
    expect(ok.legs[0]?.fields).toMatchObject({ keep: false, suite: 'fast' })
    expect(ok.warnings).toEqual([
      expect.stringContaining(
        'Leg "a" has the field "suite", which the fan-out does not apply'
      )
    ])
  })

  test.each([
    ['keep', '"false"', 'true or false unquoted'],
    ['keep-on-failure', '1', 'true or false unquoted'],
    ['cpus', '"lots"', 'a whole number from 1 to 64'],
    ['cpus', '"4"', 'a whole number from 1 to 64'],
    ['cpus', '65', 'a whole number from 1 to 64'],
    ['cpus', '1.5', 'a whole number from 1 to 64'],
    ['memory-mb', '99999999', 'a whole number from 128 to 262144'],
    ['memory-mb', '64', 'a whole number from 128 to 262144'],
    ['image', '"alpine 3"', 'without spaces'],
    ['image', '""', 'without spaces'],
    ['run', 'true', 'a script as a string']
  ])('per-leg %s %s is refused', (field, value, accepted) => {
    const { legs, problems } = readLegs(
      '',
      `[{"name":"a","${field}":${value}}]`
    )
    expect(legs).toEqual([])
    expect(problems).toEqual([
      expect.stringContaining(
        `Input legs entry 1 ("a") field "${field}" is ${value}; use `
      )
    ])
    expect(problems[0]).toContain(accepted)
  })

  test.each([
    ['both inputs', '3', 'a', 'use one of them'],
    ['neither input', '', '', 'both empty'],
    ['names equal but for case', '', '["a", "A"]', 'twice (as "a")'],
    ['a repeated line', '', 'a\na', 'names the leg "a" twice'],
    ['a space', '', 'has space', 'is not a leg name'],
    ['a path', '', '["../etc"]', 'is not a leg name'],
    ['41 characters', '', `["${'x'.repeat(41)}"]`, 'is not a leg name'],
    ['a number', '', '[1]', 'use a leg name or an object'],
    ['an object without name', '', '[{"image":"x"}]', 'has no name'],
    ['a nested field', '', '[{"name":"a","env":{"A":"1"}}]', 'are strings'],
    ['a bad field name', '', '[{"name":"a","bad key":1}]', 'field names use'],
    ['an empty array', '', '[]', 'has no legs'],
    ['an object without include', '', '{"matrix":[]}', 'without an include'],
    ['broken JSON', '', '[unit, e2e]', 'does not parse'],
    [
      '257 legs',
      '',
      JSON.stringify(Array.from({ length: 257 }, (_, i) => `l${i}`)),
      'at most 256'
    ]
  ])('refused: %s', (_label, shards, list, message) => {
    const { legs, problems } = readLegs(shards, list)
    expect(legs).toEqual([])
    expect(problems.join('\n')).toContain(message)
  })
})

describe('leg results', () => {
  test('built from the step outputs', () => {
    const outputs = {
      'lease-id': 'cbx_123456789abc',
      slug: 'shard-1-abcd-gh42-1',
      'machine-id': 'mach-1',
      'exit-code': '3',
      'sync-ms': '120',
      'command-ms': '4500',
      kept: 'true',
      'total-ms': '5000'
    }
    expect(resultFromOutputs('shard-1', 2, outputs, 'failure', 'boom')).toEqual(
      {
        leg: 'shard-1',
        attempt: 2,
        leaseId: 'cbx_123456789abc',
        slug: 'shard-1-abcd-gh42-1',
        exitCode: 3,
        syncMs: 120,
        commandMs: 4500,
        kept: true,
        outcome: 'failure',
        error: 'boom'
      }
    )
  })

  test('a lease whose machine was never created is left out', () => {
    const refused = { 'lease-id': 'cbx_123456789abc', slug: 'a-1234-gh1-1' }
    expect(
      resultFromOutputs('a', 1, refused, 'failure', 'refused')
    ).toMatchObject({ leaseId: null, slug: null, error: 'refused' })
  })

  test('a step that failed before any output has nulls', () => {
    expect(resultFromOutputs('x', null, {}, 'cancelled', undefined)).toEqual({
      leg: 'x',
      attempt: null,
      leaseId: null,
      slug: null,
      exitCode: null,
      syncMs: null,
      commandMs: null,
      kept: null,
      outcome: 'cancelled',
      error: null
    })
  })

  test('result files are checked', () => {
    expect(() => parseResult('{', 'a.json')).toThrow('a.json is not JSON')
    expect(() => parseResult('{"leg":"a"}', 'a.json')).toThrow(
      /a.json is not a leg result: leaseId/
    )
    const ok = resultFromOutputs('a', 1, {}, 'success', undefined)
    expect(parseResult(JSON.stringify(ok), 'a.json')).toEqual(ok)
  })
})

function result(leg: string, extra: Partial<LegResult> = {}): LegResult {
  return {
    leg,
    attempt: 1,
    leaseId: `cbx_${leg.padEnd(12, '0')}`,
    slug: leg,
    exitCode: 0,
    syncMs: 100,
    commandMs: 1500,
    kept: false,
    outcome: 'success',
    error: null,
    ...extra
  }
}

describe('merge', () => {
  const expected = readLegs('4', '').legs

  test('failures, a missing leg and the table', () => {
    const merged = mergeResults(expected, [
      result('shard-3', {
        exitCode: 2,
        outcome: 'failure',
        kept: true,
        error: 'The script exited with code 2.'
      }),
      result('shard-1'),
      result('shard-2', {
        outcome: 'cancelled',
        exitCode: null,
        error: 'The step was cancelled.'
      })
    ])
    expect(merged.failed).toEqual(['shard-2', 'shard-3', 'shard-4'])
    expect(
      merged.legs.map((l) => [l.leg, l.index, l.outcome, l.failed])
    ).toEqual([
      ['shard-1', 0, 'success', false],
      ['shard-2', 1, 'cancelled', true],
      ['shard-3', 2, 'failure', true],
      ['shard-4', 3, 'missing', true]
    ])
    expect(mergeHeadline(merged)).toBe(
      '4 legs: 1 succeeded, 1 failed, 1 cancelled, 1 missing'
    )
    const table = markdownTable(merged).split('\n')
    expect(table[0]).toBe(
      '| Leg | Lease | Exit code | Sync | Command | Outcome | Sandbox |'
    )
    expect(table[2]).toBe(
      '| shard-1 | `cbx_shard-100000` | 0 | 100ms | 1.5s | success | deleted |'
    )
    expect(table[4]).toBe(
      '| shard-3 | `cbx_shard-300000` | 2 | 100ms | 1.5s | **failure** | kept |'
    )
    expect(table[5]).toBe('| shard-4 |  |  |  |  | **missing** |  |')
    expect(table).toContain('- shard-3: The script exited with code 2.')
  })

  test('a success with a non-zero exit code still fails the leg', () => {
    const merged = mergeResults(readLegs('', 'a').legs, [
      result('a', { exitCode: 1 })
    ])
    expect(merged.failed).toEqual(['a'])
  })

  test('unexpected and duplicate results are reported; the last one counts', () => {
    const merged = mergeResults(readLegs('', 'a').legs, [
      result('a', { outcome: 'failure', exitCode: 1 }),
      result('a'),
      result('zzz')
    ])
    expect(merged.failed).toEqual([])
    expect(merged.unexpected).toEqual(['zzz'])
    expect(merged.duplicates).toEqual(['a'])
  })

  test('of several attempts of a leg the highest counts, in any order', () => {
    const legs = readLegs('', 'a\nb').legs
    const merged = mergeResults(legs, [
      result('a', { attempt: 2 }),
      result('a', { attempt: 1, outcome: 'failure', exitCode: 1 }),
      result('b', { attempt: 1, outcome: 'failure', exitCode: 1 }),
      result('b', { attempt: 3 }),
      result('b', { attempt: null, outcome: 'failure', exitCode: 1 })
    ])
    expect(merged.legs.map((l) => [l.leg, l.attempt, l.outcome])).toEqual([
      ['a', 2, 'success'],
      ['b', 3, 'success']
    ])
    expect(merged.failed).toEqual([])
    expect(merged.duplicates).toEqual([])
  })

  test('the headline counts cancelled legs apart', () => {
    const merged = mergeResults(readLegs('3', '').legs, [
      result('shard-1'),
      result('shard-2', { outcome: 'failure', exitCode: 1 }),
      result('shard-3', { outcome: 'cancelled', exitCode: null })
    ])
    expect(mergeHeadline(merged)).toBe(
      '3 legs: 1 succeeded, 1 failed, 1 cancelled'
    )
  })

  test('a directory of results, flat or one folder per artifact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smolvm-results-'))
    try {
      await writeResultFile(join(dir, 'shard-1.json'), result('shard-1'))
      await writeResultFile(
        join(dir, 'art-2', 'shard-2.json'),
        result('shard-2')
      )
      await writeFile(join(dir, 'broken.json'), 'nope')
      await mkdir(join(dir, 'odd.json'))
      await writeFile(join(dir, 'notes.txt'), 'ignored')
      const { results, problems } = await readResultDir(dir)
      expect(results.map((r) => r.leg).sort()).toEqual(['shard-1', 'shard-2'])
      expect(problems).toEqual([
        expect.stringContaining('broken.json is not JSON')
      ])
      const missing = await readResultDir(join(dir, 'absent'))
      expect(missing.results).toEqual([])
      expect(missing.problems[0]).toContain('does not exist')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('selecting sandboxes by run and age', () => {
  const now = Date.parse('2026-03-01T12:00:00Z')
  const ago = (minutes: number): string =>
    new Date(now - minutes * 60_000).toISOString()

  function machine(
    slug: string,
    runId: string | undefined,
    minutes: number,
    handOver = false
  ): MachineRecord {
    const env = runId ? { GITHUB_RUN_ID: runId, GITHUB_RUN_ATTEMPT: '1' } : {}
    const id = newIdentity(slug, env, handOver)
    return {
      id: `mach-${id.leaseId.slice(4)}`,
      name: id.name,
      state: 'running',
      createdAt: ago(minutes)
    }
  }

  const machines = [
    machine('leg-a', '100', 5),
    machine('leg-b', '100', 300),
    machine('kept', '100', 5, true),
    machine('other-run', '200', 600),
    machine('other-kept', '200', 600, true),
    machine('crabbox-cli', undefined, 6000),
    {
      id: 'mach-foreign',
      name: 'not-ours',
      state: 'running',
      createdAt: ago(9999)
    }
  ] as MachineRecord[]
  const entries = toEntries(machines)
  const slugs = (list: { slug: string }[]): string[] =>
    list.map((e) => e.slug.replace(/-[0-9a-f]{4}-gh.*$/, ''))

  test('only names of this action or Crabbox become entries', () => {
    expect(entries).toHaveLength(6)
    expect(entries.find((e) => e.slug.startsWith('kept'))?.handedOver).toBe(
      true
    )
    expect(entries.find((e) => e.slug.startsWith('leg-a'))?.runId).toBe('100')
  })

  test('by run: every sandbox of that run except those handed over', () => {
    expect(slugs(selectEntries(entries, { runId: '100' }, now))).toEqual([
      'leg-a',
      'leg-b'
    ])
    expect(slugs(selectEntries(entries, { runId: '999' }, now))).toEqual([])
  })

  test('by run and slug prefix: only the fan-out whose slugs start with it', () => {
    const env = { GITHUB_RUN_ID: '100', GITHUB_RUN_ATTEMPT: '2' }
    const fanouts = toEntries(
      ['foaaa111-unit', 'foaaa111-e2e', 'fobbb222-unit', 'unit'].map((s) => ({
        id: `mach-${s}`,
        name: newIdentity(s, env).name,
        state: 'running',
        createdAt: ago(1)
      }))
    )
    const sel = { runId: '100', slugPrefix: 'foaaa111-' }
    expect(slugs(selectEntries(fanouts, sel, now))).toEqual([
      'foaaa111-unit',
      'foaaa111-e2e'
    ])
    // The prefix narrows a selection; it is not one by itself.
    expect(selectEntries(fanouts, { slugPrefix: 'foaaa111-' }, now)).toEqual([])
    // The run marker is not part of what the prefix is matched against.
    expect(
      selectEntries(fanouts, { runId: '100', slugPrefix: 'unit-' }, now)
    ).toEqual([])
  })

  test('by run and age', () => {
    expect(
      slugs(
        selectEntries(entries, { runId: '100', olderThanMs: 60 * 60_000 }, now)
      )
    ).toEqual(['leg-b'])
  })

  test('by age alone (the sweeper): kept ones too, but only sandboxes of a run', () => {
    expect(
      slugs(selectEntries(entries, { olderThanMs: 60 * 60_000 }, now))
    ).toEqual(['leg-b', 'other-run', 'other-kept'])
    expect(slugs(selectEntries(entries, { olderThanMs: 0 }, now))).toHaveLength(
      5
    )
  })

  test('no criterion selects nothing; an unknown creation time is never old', () => {
    expect(selectEntries(entries, { runId: undefined }, now)).toEqual([])
    const undated = toEntries([
      { ...machines[1], createdAt: undefined } as MachineRecord
    ])
    expect(selectEntries(undated, { runId: '100' }, now)).toHaveLength(1)
    expect(
      selectEntries(undated, { runId: '100', olderThanMs: 1 }, now)
    ).toEqual([])
    expect(selectEntries(undated, { olderThanMs: 1 }, now)).toEqual([])
  })

  test('a sandbox created after now (clock skew) is not older than anything', () => {
    const future = toEntries([
      { ...machines[0], createdAt: ago(-10) } as MachineRecord
    ])
    expect(selectEntries(future, { olderThanMs: 0 }, now)).toEqual([])
  })
})

describe('inputs of the fan-out modes', () => {
  // The runner's add-mask and warning commands are not the point here.
  jest.spyOn(process.stdout, 'write').mockImplementation(() => true)

  function read(inputs: Record<string, string>): ReturnType<typeof getInputs> {
    for (const k of Object.keys(process.env)) {
      if (k.startsWith('INPUT_')) Reflect.deleteProperty(process.env, k)
    }
    for (const [k, v] of Object.entries(inputs)) {
      process.env[`INPUT_${k.toUpperCase()}`] = v
    }
    return getInputs({})
  }

  afterEach(() => {
    for (const k of Object.keys(process.env)) {
      if (k.startsWith('INPUT_')) Reflect.deleteProperty(process.env, k)
    }
  })

  test('legs and merge need no API key; the other modes still do', () => {
    expect(read({ mode: 'legs', shards: '2' }).legs).toHaveLength(2)
    expect(
      read({ mode: 'merge', legs: 'a\nb', 'results-dir': 'out' })
    ).toMatchObject({ resultsDir: 'out', legs: [{ name: 'a' }, { name: 'b' }] })
    expect(() => read({ mode: 'list' })).toThrow('Input api-key is empty')
  })

  test('leg problems are input problems, reported with the others', () => {
    expect(() => read({ mode: 'legs' })).toThrow(
      'shards and legs are both empty'
    )
    expect(() => read({ mode: 'merge', shards: '0' })).toThrow(
      /2 problems:\n- Input shards "0" .*\n- Input results-dir is empty/
    )
  })

  test('slug-prefix narrows stop-run or older-than and is a slug', () => {
    const stop = { 'api-key': 'smk_x', mode: 'stop' }
    expect(
      read({ ...stop, 'older-than': '1h', 'slug-prefix': 'foabc123-' })
        .stopSelection
    ).toEqual({
      runId: undefined,
      olderThanMs: 3_600_000,
      slugPrefix: 'foabc123-'
    })
    expect(() => read({ ...stop, 'slug-prefix': 'foabc123-' })).toThrow(
      'Input slug-prefix "foabc123-" narrows a selection; set stop-run or older-than too.'
    )
    expect(() =>
      read({ ...stop, 'older-than': '1h', 'slug-prefix': 'Fo_x' })
    ).toThrow('Input slug-prefix "Fo_x" must be lowercase letters')
  })

  test('mode run takes a result file and a leg name', () => {
    const i = read({
      'api-key': 'smk_x',
      run: 'x',
      'result-file': 'r/a.json',
      leg: 'a'
    })
    expect(i).toMatchObject({ resultFile: 'r/a.json', leg: 'a', legs: [] })
  })
})
