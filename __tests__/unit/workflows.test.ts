// The workflows and action.yml, checked with GitHub's own parser and
// against the code, so that a broken workflow or a stale README fails CI
// here rather than in a user's repository.

import { describe, expect, test } from '@jest/globals'
import {
  NoOperationTraceWriter,
  convertWorkflowTemplate,
  parseWorkflow
} from '@actions/workflow-parser'
import { parseAction } from '@actions/workflow-parser/actions/action-parser'
import type { File } from '@actions/workflow-parser/workflows/file'
import type { FileProvider } from '@actions/workflow-parser/workflows/file-provider'
import type { FileReference } from '@actions/workflow-parser/workflows/file-reference'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { renderTables } from '../../scripts/action-docs.js'
import { fanoutSlugPrefix } from '../../src/fanout/legs.js'
import { MODES } from '../../src/inputs.js'

const ACTION = 'crabbox/smolvm-action@v1'
const OWN_WORKFLOW =
  /^crabbox\/smolvm-action\/(\.github\/workflows\/[\w.-]+\.yml)@v1$/
const WORKFLOWS = '.github/workflows'
const REUSABLE = ['fanout.yml', 'cleanup.yml', 'sweep.yml']

interface ActionYml {
  name: string
  description: string
  inputs: Record<string, { description?: string; default?: unknown }>
  outputs: Record<string, { description?: string }>
  runs: { using: string; main: string; post?: string; 'post-if'?: string }
}

interface Step {
  id?: string
  if?: string
  uses?: string
  with?: Record<string, unknown>
}

interface Job {
  needs?: string | string[]
  if?: string
  uses?: string
  with?: Record<string, unknown>
  outputs?: Record<string, string>
  strategy?: Record<string, unknown>
  env?: Record<string, string>
  steps?: Step[]
}

interface Workflow {
  on: Record<string, unknown> | string | string[]
  jobs: Record<string, Job>
}

interface CallDefinition {
  inputs?: Record<string, { type: string; default?: unknown }>
  secrets?: Record<string, unknown>
  outputs?: Record<string, { value: string }>
}

const actionText = readFileSync('action.yml', 'utf8')
const action = parse(actionText) as ActionYml
const workflowFiles = readdirSync(WORKFLOWS).filter((f) => f.endsWith('.yml'))
const workflows = new Map(
  workflowFiles.map((f) => {
    const text = readFileSync(join(WORKFLOWS, f), 'utf8')
    return [f, { text, yml: parse(text) as Workflow }]
  })
)

function callDefinition(yml: Workflow): CallDefinition {
  return (yml.on as Record<string, unknown>).workflow_call ?? {}
}

/** Serves this repository's workflows to the converter, as GitHub would. */
const provider: FileProvider = {
  getFileContent(ref: FileReference): Promise<File> {
    const path =
      'repository' in ref
        ? OWN_WORKFLOW.exec(
            `${ref.owner}/${ref.repository}/${ref.path}@${ref.version}`
          )?.[1]
        : ref.path.replace(/^\.\//, '')
    if (!path || !existsSync(path)) {
      return Promise.reject(
        new Error(`no such workflow: ${JSON.stringify(ref)}`)
      )
    }
    return Promise.resolve({ name: path, content: readFileSync(path, 'utf8') })
  }
}

/** Errors of GitHub's workflow parser and converter, reusable calls included. */
async function workflowErrors(
  name: string,
  content: string
): Promise<string[]> {
  const parsed = parseWorkflow({ name, content }, new NoOperationTraceWriter())
  const errors = parsed.context.errors.getErrors().map((e) => e.message)
  if (errors.length > 0 || !parsed.value) return errors
  const template = await convertWorkflowTemplate(
    parsed.context,
    parsed.value,
    provider,
    {
      fetchReusableWorkflowDepth: 1
    }
  )
  return (template.errors ?? []).map((e) => e.Message)
}

/** Text without YAML comment lines, where examples would give false hits. */
const code = (text: string): string =>
  text
    .split('\n')
    .filter((l) => !l.trim().startsWith('#'))
    .join('\n')

const refs = (text: string, pattern: RegExp): string[][] =>
  [...code(text).matchAll(pattern)].map((m) => m.slice(1))

describe('GitHub workflow parser', () => {
  test('the repository has CI and the reusable workflows', () => {
    expect(workflowFiles).toEqual(
      expect.arrayContaining(['ci.yml', ...REUSABLE])
    )
    for (const file of workflowFiles) {
      const on = workflows.get(file)!.yml.on
      const events =
        typeof on === 'string' ? [on] : Array.isArray(on) ? on : Object.keys(on)
      const reusable = events.includes('workflow_call')
      expect([file, reusable]).toEqual([file, REUSABLE.includes(file)])
    }
  })

  test.each(workflowFiles)(
    '%s parses and converts without errors',
    async (file) => {
      const { text } = workflows.get(file)!
      expect(await workflowErrors(file, text)).toEqual([])
    }
  )

  test('a broken workflow is caught', async () => {
    const broken =
      'on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: a@b\n        run: echo\n'
    expect((await workflowErrors('broken.yml', broken)).length).toBeGreaterThan(
      0
    )
    const badCall = [
      'on: push',
      'jobs:',
      '  a:',
      '    uses: crabbox/smolvm-action/.github/workflows/fanout.yml@v1',
      '    with:',
      '      shard: 3'
    ].join('\n')
    expect(await workflowErrors('call.yml', badCall)).toEqual(
      expect.arrayContaining([expect.stringContaining('shard is not defined')])
    )
  })

  test('action.yml parses with the action schema', () => {
    const parsed = parseAction(
      { name: 'action.yml', content: actionText },
      new NoOperationTraceWriter()
    )
    expect(parsed.context.errors.getErrors().map((e) => e.message)).toEqual([])
    expect(parsed.value).toBeDefined()
    const bad = parseAction(
      {
        name: 'action.yml',
        content: actionText.replace('using: node24', 'using: node99')
      },
      new NoOperationTraceWriter()
    )
    expect(bad.context.errors.getErrors().length).toBeGreaterThan(0)
  })
})

describe('action metadata', () => {
  const kebab = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/
  const sources = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
  const src = sources('src').join('\n')

  test('every input and output has a description and a kebab-case name', () => {
    expect(action.name).toBeTruthy()
    expect(action.description).toBeTruthy()
    for (const [name, value] of [
      ...Object.entries(action.inputs),
      ...Object.entries(action.outputs)
    ]) {
      expect([name, kebab.test(name)]).toEqual([name, true])
      expect([name, (value.description ?? '').length > 10]).toEqual([
        name,
        true
      ])
    }
  })

  test('runs on node24 with a post step that always runs', () => {
    expect(action.runs.using).toBe('node24')
    expect(action.runs.main).toBe('dist/main/index.js')
    expect(action.runs.post).toBe('dist/post/index.js')
    expect(action.runs['post-if']).toBe('always()')
    // scripts/test.sh builds dist/ before the tests run.
    expect(existsSync(action.runs.main)).toBe(true)
    expect(existsSync(action.runs.post!)).toBe(true)
  })

  test('the inputs the code reads are exactly those in action.yml', () => {
    // core.getInput and the input reader's helpers, whose first argument
    // is the input's name.
    const read = new Set(
      [
        ...src.matchAll(
          /\b(?:getInput|getBooleanInput|getMultilineInput|read\.\w+|this\.(?:raw|lines))\(\s*'([a-z][a-z0-9-]*)'/g
        )
      ].map((m) => m[1] as string)
    )
    expect([...read].sort()).toEqual(Object.keys(action.inputs).sort())
  })

  test('the outputs the code sets are exactly those in action.yml', () => {
    const set = new Set(
      [...src.matchAll(/\bsetOutput\(\s*'([a-z][a-z0-9-]*)'/g)].map(
        (m) => m[1] as string
      )
    )
    expect([...set].sort()).toEqual(Object.keys(action.outputs).sort())
  })

  test("the README's tables are rendered from action.yml", () => {
    const readme = readFileSync('README.md', 'utf8')
    const tables = renderTables(actionText)
    const section = (key: string): string | undefined =>
      new RegExp(
        `<!-- ${key}:start -->\\n([\\s\\S]*?)\\n<!-- ${key}:end -->`
      ).exec(readme)?.[1]
    expect(section('inputs')).toBe(tables.inputs)
    expect(section('outputs')).toBe(tables.outputs)
  })
})

describe('workflows against the action and each other', () => {
  const actionUses = [...workflows].flatMap(([file, { yml }]) =>
    Object.entries(yml.jobs).flatMap(([job, j]) =>
      (j.steps ?? [])
        .filter((s) => s.uses === ACTION || s.uses === './')
        .map((s) => ({ file, job, step: s }))
    )
  )

  test('reusable workflows use the published action, CI the working tree', () => {
    for (const [file, { yml, text }] of workflows) {
      const uses = Object.values(yml.jobs)
        .flatMap((j) => j.steps ?? [])
        .map((s) => s.uses)
        .filter(
          (u): u is string => u !== undefined && /smolvm-action|^\.\/?$/.test(u)
        )
      // A caller's run has no copy of this repository; only its own CI does.
      const reusable = REUSABLE.includes(file)
      if (uses.length === 0) continue
      expect([file, [...new Set(uses)]]).toEqual([
        file,
        [reusable ? ACTION : './']
      ])
      if (reusable) {
        // Their header examples name the workflow at the same version.
        for (const ref of text.match(/crabbox\/smolvm-action\/[^\s]+/g) ?? []) {
          expect(ref).toMatch(
            new RegExp(
              `^crabbox/smolvm-action/\\.github/workflows/${file.replace('.', '\\.')}@v1$`
            )
          )
        }
      }
    }
    expect(actionUses.length).toBeGreaterThan(8)
  })

  test('every other action is pinned to a ref', () => {
    for (const [file, { yml }] of workflows) {
      for (const s of Object.values(yml.jobs).flatMap((j) => j.steps ?? [])) {
        if (!s.uses || s.uses.startsWith('./')) continue
        expect([file, s.uses]).toEqual([
          file,
          expect.stringMatching(/^[\w.-]+\/[\w./-]+@[\w.-]+$/)
        ])
      }
    }
  })

  test('every input passed to the action exists in action.yml', () => {
    for (const { file, job, step } of actionUses) {
      for (const key of Object.keys(step.with ?? {})) {
        expect([file, job, key, key in action.inputs]).toEqual([
          file,
          job,
          key,
          true
        ])
      }
    }
  })

  test('every step output read from the action exists in action.yml', () => {
    for (const [file, { yml }] of workflows) {
      for (const [job, j] of Object.entries(yml.jobs)) {
        const ids = new Map((j.steps ?? []).map((s) => [s.id, s.uses]))
        for (const [id, output] of refs(
          JSON.stringify(j),
          /steps\.([\w-]+)\.outputs\.([\w-]+)/g
        )) {
          expect([file, job, id, ids.has(id)]).toEqual([file, job, id, true])
          const uses = ids.get(id)
          // Outputs of run steps are the workflow's own business.
          if (uses !== ACTION && uses !== './') continue
          expect([file, job, output, output! in action.outputs]).toEqual([
            file,
            job,
            output,
            true
          ])
        }
      }
    }
  })

  test('inputs, secrets, needs and job outputs referenced are defined', () => {
    for (const [file, { yml, text }] of workflows) {
      const call = callDefinition(yml)
      for (const [name] of refs(text, /\binputs\.([\w-]+)/g)) {
        expect([file, name, name! in (call.inputs ?? {})]).toEqual([
          file,
          name,
          true
        ])
      }
      for (const [name] of refs(text, /\bsecrets\.([\w-]+)/g)) {
        expect([file, name, name! in (call.secrets ?? {})]).toEqual([
          file,
          name,
          true
        ])
      }
      for (const [job, j] of Object.entries(yml.jobs)) {
        const needs = [j.needs ?? []].flat()
        for (const [other, output] of refs(
          JSON.stringify(j),
          /needs\.([\w-]+)\.outputs\.([\w-]+)/g
        )) {
          expect([file, job, other, needs.includes(other!)]).toEqual([
            file,
            job,
            other,
            true
          ])
          expect([
            file,
            other,
            output,
            output! in (yml.jobs[other!]?.outputs ?? {})
          ]).toEqual([file, other, output, true])
        }
      }
      for (const [name, out] of Object.entries(call.outputs ?? {})) {
        const [, job, output] =
          /jobs\.([\w-]+)\.outputs\.([\w-]+)/.exec(out.value) ?? []
        expect([
          file,
          name,
          output! in (yml.jobs[job!]?.outputs ?? {})
        ]).toEqual([file, name, true])
      }
    }
  })

  test('the reusable workflows take the API key as a secret, never an input', () => {
    for (const file of REUSABLE) {
      const call = callDefinition(workflows.get(file)!.yml)
      expect(Object.keys(call.secrets ?? {})).toEqual(['SMOLMACHINES_API_KEY'])
      expect(
        Object.keys(call.inputs ?? {}).filter((i) => /key/i.test(i))
      ).toEqual([])
    }
  })
})

/** The action's steps in a job, and the step of another action by name. */
const ownSteps = (j: Job | undefined): Step[] =>
  (j?.steps ?? []).filter((s) => s.uses === ACTION || s.uses === './')
const stepOf = (j: Job | undefined, action: string): Step | undefined =>
  (j?.steps ?? []).find((s) => s.uses?.startsWith(`${action}@`))

/**
 * Stands in for the runner's expression evaluation in the names fanout.yml
 * builds from expressions: each expression gets a sample value.
 */
function expand(text: unknown, values: Record<string, string>): string {
  return String(text).replace(/\$\{\{\s*([^}]*?)\s*\}\}/g, (_, e: string) =>
    e in values ? (values[e] as string) : `<${e}>`
  )
}

const globMatches = (glob: string, name: string): boolean =>
  new RegExp(
    `^${glob.replace(/[.+?^$()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`
  ).test(name)

/**
 * What fanout.yml must get right for the fan-out to work and to clean up
 * after itself only: each problem names what is wrong.
 */
function fanoutProblems(yml: Workflow): string[] {
  const problems: string[] = []
  const check = (ok: boolean, problem: string): void => {
    if (!ok) problems.push(problem)
  }
  const { legs, leg, merge, cleanup } = yml.jobs
  const call = callDefinition(yml)
  const needs = (j: Job | undefined): string[] => [j?.needs ?? []].flat()

  // Merge and cleanup must run when legs failed or were cancelled.
  for (const [name, j] of [
    ['merge', merge],
    ['cleanup', cleanup]
  ] as const) {
    check(/\balways\(\)/.test(j?.if ?? ''), `${name}: if lacks always()`)
    check(
      (j?.if ?? '').includes("needs.legs.result == 'success'"),
      `${name}: if does not wait for a successful legs job`
    )
    check(
      needs(j).includes('leg') && needs(j).includes('legs'),
      `${name}: does not need legs and leg`
    )
  }

  // The legs job hands over the matrix and the fan-out's key.
  check(
    ownSteps(legs).some((s) => s.with?.mode === 'legs'),
    'legs: no mode legs step'
  )
  for (const out of ['legs', 'key']) {
    check(
      legs?.outputs?.[out] === `\${{ steps.legs.outputs.${out} }}`,
      `legs: output ${out} is not the step's`
    )
  }

  // Matrix settings come from the inputs.
  check(
    leg?.strategy?.['fail-fast'] === '${{ inputs.fail-fast }}',
    'leg: fail-fast is not wired from the input'
  )
  check(
    leg?.strategy?.['max-parallel'] === '${{ inputs.max-parallel }}',
    'leg: max-parallel is not wired from the input'
  )

  // The run step: the leg's slug, the variables and the result file.
  const run = ownSteps(leg)[0]
  const w = run?.with ?? {}
  check(
    String(w.slug).includes('matrix.slug'),
    "leg: new sandboxes do not take the matrix's slug"
  )
  const forwarded = String(w['env-forward']).split(/[\s,]+/)
  check(forwarded.includes('SMOLVM_LEG*'), 'leg: SMOLVM_LEG* is not forwarded')
  for (const v of ['', '_INDEX', '_TOTAL', '_JSON']) {
    check(
      leg?.env?.[`SMOLVM_LEG${v}`] !== undefined,
      `leg: SMOLVM_LEG${v} is not set`
    )
  }
  for (const input of Object.keys(call.inputs ?? {})) {
    // The legs job takes legs and shards; every other input is the leg's.
    if (input in action.inputs && !['legs', 'shards'].includes(input)) {
      check(
        Object.values(w).some((v) => String(v).includes(`inputs.${input}`)),
        `leg: input ${input} does not reach the action`
      )
    }
  }
  check(
    String(w.leg).includes('matrix.leg'),
    'leg: the result does not name the leg'
  )

  // The upload: the leg's result file, one artifact per key, leg and attempt.
  const upload = stepOf(leg, 'actions/upload-artifact')
  const download = stepOf(merge, 'actions/download-artifact')
  check(/\balways\(\)/.test(upload?.if ?? ''), 'leg: upload lacks always()')
  check(
    upload?.with?.path === w['result-file'],
    "leg: the upload path is not the step's result-file"
  )
  check(
    upload?.with?.overwrite === undefined,
    'leg: the upload overwrites another artifact'
  )
  const sample = (key: string, name: string, attempt: string): string =>
    expand(upload?.with?.name, {
      'inputs.name': 'smolvm',
      'needs.legs.outputs.key': key,
      'matrix.leg': name,
      'github.run_attempt': attempt
    })
  const names = [
    sample('abc123', 'unit', '1'),
    sample('abc123', 'unit', '2'),
    sample('abc123', 'e2e', '1'),
    sample('def456', 'unit', '1')
  ]
  check(
    new Set(names).size === names.length && !names.some((n) => n.includes('<')),
    'leg: the artifact name is not unique per key, leg and attempt'
  )

  // The download: this fan-out's artifacts, each in its own folder.
  const pattern = expand(download?.with?.pattern, {
    'inputs.name': 'smolvm',
    'needs.legs.outputs.key': 'abc123'
  })
  check(
    names.slice(0, 3).every((n) => globMatches(pattern, n)),
    `merge: the download pattern ${pattern} misses this fan-out's artifacts`
  )
  check(
    !globMatches(pattern, names[3] as string),
    `merge: the download pattern ${pattern} takes another fan-out's artifacts`
  )
  check(
    download?.with?.['merge-multiple'] === undefined,
    'merge: merge-multiple lets one attempt of a leg hide another'
  )
  const mergeStep = ownSteps(merge).find((s) => s.with?.mode === 'merge')
  check(
    mergeStep?.with?.['results-dir'] === download?.with?.path,
    'merge: results-dir is not where the artifacts were downloaded'
  )

  // The cleanup: this fan-out's sandboxes only.
  const stop = ownSteps(cleanup).find((s) => s.with?.mode === 'stop')
  check(stop?.with?.['stop-run'] === 'current', 'cleanup: not by this run')
  check(
    expand(stop?.with?.['slug-prefix'], {
      'needs.legs.outputs.key': 'abc123'
    }) === fanoutSlugPrefix('abc123'),
    "cleanup: slug-prefix is not the fan-out's"
  )
  return problems
}

describe("the fan-out's wiring", () => {
  const fanout = workflows.get('fanout.yml')!.yml

  test('fanout.yml has none of the problems checked for', () => {
    expect(fanoutProblems(fanout)).toEqual([])
  })

  type Mutation = (w: Workflow) => void
  const withOf = (w: Workflow, job: string, i = 0): Record<string, unknown> =>
    ((w.jobs[job]!.steps ?? [])[i] as Step).with!
  test.each<[string, Mutation, string]>([
    [
      'merge without always()',
      (w) => void (w.jobs.merge!.if = "needs.legs.result == 'success'"),
      'merge: if lacks always()'
    ],
    [
      'cleanup without always()',
      (w) => void (w.jobs.cleanup!.if = 'inputs.cleanup'),
      'cleanup: if lacks always()'
    ],
    [
      'cleanup not needing leg',
      (w) => void (w.jobs.cleanup!.needs = ['legs']),
      'cleanup: does not need legs and leg'
    ],
    [
      'an artifact name without the attempt',
      (w) =>
        void (withOf(w, 'leg', 2).name =
          '${{ inputs.name }}-${{ needs.legs.outputs.key }}-${{ matrix.leg }}'),
      'not unique per key, leg and attempt'
    ],
    [
      'an artifact name without the key',
      (w) =>
        void (withOf(w, 'leg', 2).name =
          '${{ inputs.name }}-${{ matrix.leg }}-${{ github.run_attempt }}'),
      'merge: the download pattern'
    ],
    [
      'a download pattern of the old names',
      (w) => void (withOf(w, 'merge').pattern = '${{ inputs.name }}-result-*'),
      "misses this fan-out's artifacts"
    ],
    [
      'a download pattern without the key',
      (w) => void (withOf(w, 'merge').pattern = '${{ inputs.name }}-*'),
      "takes another fan-out's artifacts"
    ],
    [
      'merge-multiple',
      (w) => void (withOf(w, 'merge')['merge-multiple'] = true),
      'merge-multiple'
    ],
    [
      'overwrite',
      (w) => void (withOf(w, 'leg', 2).overwrite = true),
      'overwrites'
    ],
    [
      'an upload path other than the result file',
      (w) => void (withOf(w, 'leg', 2).path = 'result.json'),
      "the upload path is not the step's result-file"
    ],
    [
      'SMOLVM_LEG* not forwarded',
      (w) =>
        void (withOf(w, 'leg', 1)['env-forward'] = '${{ inputs.env-forward }}'),
      'SMOLVM_LEG* is not forwarded'
    ],
    [
      'fail-fast not wired',
      (w) => void (w.jobs.leg!.strategy!['fail-fast'] = false),
      'fail-fast is not wired'
    ],
    [
      'max-parallel not wired',
      (w) => void (w.jobs.leg!.strategy!['max-parallel'] = 4),
      'max-parallel is not wired'
    ],
    [
      'a leg slug that is not the fan-out key',
      (w) => void (withOf(w, 'leg', 1).slug = '${{ matrix.leg }}'),
      "do not take the matrix's slug"
    ],
    [
      'cleanup of the whole run',
      (w) => void Reflect.deleteProperty(withOf(w, 'cleanup'), 'slug-prefix'),
      "slug-prefix is not the fan-out's"
    ],
    [
      'an input that does not reach the action',
      (w) => void Reflect.deleteProperty(withOf(w, 'leg', 1), 'ttl-minutes'),
      'input ttl-minutes does not reach the action'
    ]
  ])('%s is caught', (_label, mutate, problem) => {
    const copy = structuredClone(fanout)
    mutate(copy)
    expect(fanoutProblems(copy)).toEqual(
      expect.arrayContaining([expect.stringContaining(problem)])
    )
  })
})

describe('literal values of the action inputs', () => {
  const readme = readFileSync('README.md', 'utf8')
  const readmeExamples = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => parse(m[1] as string) as unknown)
    .filter(
      (y): y is Workflow => typeof y === 'object' && y !== null && 'jobs' in y
    )
  const steps = [
    ...[...workflows].map(([file, { yml }]) => [file, yml] as const),
    ...readmeExamples.map((yml, i) => [`README example ${i + 1}`, yml] as const)
  ].flatMap(([file, yml]) =>
    Object.values(yml.jobs).flatMap((j) =>
      ownSteps(j).map((s) => [file, s.with ?? {}] as const)
    )
  )
  const literal = (v: unknown): v is string | number =>
    (typeof v === 'string' && !v.includes('${{')) || typeof v === 'number'

  test('mode is one of the modes and stop-run is current or a run id', () => {
    expect(steps.length).toBeGreaterThan(10)
    for (const [file, w] of steps) {
      if (literal(w.mode)) {
        expect([
          file,
          w.mode,
          (MODES as readonly string[]).includes(String(w.mode))
        ]).toEqual([file, w.mode, true])
      }
      if (literal(w['stop-run'])) {
        expect([
          file,
          w['stop-run'],
          /^(current|\d+)$/.test(String(w['stop-run']))
        ]).toEqual([file, w['stop-run'], true])
      }
    }
  })
})

describe("the README's reusable workflow section", () => {
  const readme = readFileSync('README.md', 'utf8')
  const start = readme.indexOf('## Reusable workflows')
  const doc = readme.slice(start, readme.indexOf('\n## ', start + 1))
  const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] as string)
    .filter((y) => /^jobs:/m.test(y))

  test('has a complete caller example for each reusable workflow', () => {
    for (const file of REUSABLE) {
      expect([
        file,
        examples.some((e) =>
          e.includes(`crabbox/smolvm-action/.github/workflows/${file}@v1`)
        )
      ]).toEqual([file, true])
    }
  })

  test.each(examples.map((e, i) => [i + 1, e]))(
    'caller example %i is a valid workflow whose calls match the reusable workflows',
    async (i, example) => {
      expect(
        await workflowErrors(`example-${i}.yml`, example as string)
      ).toEqual([])
      const yml = parse(example as string) as Workflow
      // A job that calls a reusable workflow has that workflow's outputs.
      const outputsOf = (job: string): string[] => {
        const j = yml.jobs[job]
        const file = OWN_WORKFLOW.exec(j?.uses ?? '')?.[1]
        if (!file) return Object.keys(j?.outputs ?? {})
        const called = workflows.get(file.replace(`${WORKFLOWS}/`, ''))
        return Object.keys(callDefinition(called!.yml).outputs ?? {})
      }
      for (const [job, j] of Object.entries(yml.jobs)) {
        for (const [other, output] of refs(
          JSON.stringify(j),
          /needs\.([\w-]+)\.outputs\.([\w-]+)/g
        )) {
          expect([
            job,
            other,
            output,
            outputsOf(other!).includes(output!)
          ]).toEqual([job, other, output, true])
        }
      }
      for (const j of Object.values(yml.jobs)) {
        for (const s of j.steps ?? []) {
          if (s.uses !== ACTION) continue
          for (const key of Object.keys(s.with ?? {})) {
            expect([key, key in action.inputs]).toEqual([key, true])
          }
        }
      }
    }
  )
})
