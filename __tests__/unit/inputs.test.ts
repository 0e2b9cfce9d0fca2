import { afterEach, describe, expect, jest, test } from '@jest/globals'
import { InputError, getInputs, parseDuration } from '../../src/inputs.js'

// process.env is the runner's input channel, so tests must edit it.
function clearInputs(): void {
  for (const k of Object.keys(process.env)) {
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete
    if (k.startsWith('INPUT_')) delete process.env[k]
  }
}

const KEY = 'smk_unit_test_key_123456'

function withInputs(
  inputs: Record<string, string>,
  env: NodeJS.ProcessEnv = {}
): () => ReturnType<typeof getInputs> {
  clearInputs()
  for (const [k, v] of Object.entries(inputs))
    process.env[`INPUT_${k.toUpperCase()}`] = v
  return () => getInputs({ ...env })
}

afterEach(clearInputs)

// The runner's add-mask and warning commands are not the point here.
const stdout = jest
  .spyOn(process.stdout, 'write')
  .mockImplementation(() => true)

describe('valid inputs', () => {
  test('defaults for mode run', () => {
    const i = withInputs({ 'api-key': KEY, run: 'make test' })()
    expect(i).toMatchObject({
      mode: 'run',
      image: 'alpine',
      workdir: '/workspace',
      cpus: 2,
      memoryMb: 2048,
      network: 'open',
      keep: false,
      sync: true,
      timeoutMinutes: 360,
      baseUrl: 'https://api.smolmachines.com'
    })
  })

  test('key and shape fall back to the Crabbox variables', () => {
    const i = withInputs(
      { run: 'x' },
      {
        SMOLMACHINES_API_KEY: 'smk_second',
        SMK_API_KEY: 'smk_third',
        CRABBOX_SMOLVM_IMAGE: 'ubuntu:24.04',
        CRABBOX_SMOLVM_CPUS: '4',
        CRABBOX_SMOLVM_MEMORY_MB: '4096',
        CRABBOX_SMOLVM_NETWORK: 'private',
        CRABBOX_SMOLVM_WORKDIR: '/workspace/repo/',
        CRABBOX_SMOLVM_KEEP: 'yes'
      }
    )()
    expect(i).toMatchObject({
      apiKey: 'smk_second',
      image: 'ubuntu:24.04',
      cpus: 4,
      memoryMb: 4096,
      network: 'blocked',
      workdir: '/workspace/repo',
      keep: true
    })
  })

  test('CRABBOX_SMOLVM_API_KEY wins over the other names', () => {
    const i = withInputs(
      { run: 'x' },
      { CRABBOX_SMOLVM_API_KEY: 'smk_first', SMK_API_KEY: 'smk_third' }
    )()
    expect(i.apiKey).toBe('smk_first')
  })

  test('slug is normalised; stop takes several ids', () => {
    expect(
      withInputs({ 'api-key': KEY, run: 'x', slug: '  My Slug!! ' })().slug
    ).toBe('my-slug')
    expect(
      withInputs({ 'api-key': KEY, mode: 'stop', id: 'a\n\nb\n' })().ids
    ).toEqual(['a', 'b'])
  })

  test('loopback http and custom hosts when allowed', () => {
    expect(
      withInputs({
        'api-key': KEY,
        run: 'x',
        'base-url': 'http://127.0.0.1:8080/'
      })().baseUrl
    ).toBe('http://127.0.0.1:8080')
    expect(
      withInputs({
        'api-key': KEY,
        run: 'x',
        'base-url': 'https://fleet.example.test',
        'allow-custom-base-url': 'true'
      })().baseUrl
    ).toBe('https://fleet.example.test')
  })

  test('durations', () => {
    expect(parseDuration('90m')).toBe(5_400_000)
    expect(parseDuration('2h')).toBe(7_200_000)
    expect(parseDuration('1d')).toBe(86_400_000)
    expect(parseDuration('soon')).toBeUndefined()
  })
})

describe('bad inputs are refused with the input, the value and the fix', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      'cpus not an integer',
      { cpus: '1.5' },
      /Input cpus "1.5" must be a whole number from 1 to 64/
    ],
    [
      'cpus out of range',
      { cpus: '0' },
      /Input cpus "0" must be a whole number/
    ],
    ['memory not a number', { 'memory-mb': 'lots' }, /Input memory-mb "lots"/],
    [
      'timeout negative',
      { 'timeout-minutes': '-5' },
      /Input timeout-minutes "-5"/
    ],
    [
      'unknown mode',
      { mode: 'destroy' },
      /Input mode "destroy" is not one of warmup, run, stop, status, list/
    ],
    [
      'unknown network',
      { network: 'wide' },
      /Input network "wide" is not a network mode; use open or blocked/
    ],
    [
      'relative workdir',
      { workdir: 'repo' },
      /Input workdir "repo" must be an absolute path/
    ],
    [
      'system root',
      { workdir: '/etc' },
      /resolves to \/etc, a system directory/
    ],
    ['dot-dot escape', { workdir: '/workspace/../etc' }, /resolves to \/etc/],
    ['outside workspace', { workdir: '/srv/app' }, /outside \/workspace/],
    [
      'empty slug',
      { slug: '!!!' },
      /Input slug "!!!" must contain at least one letter or digit/
    ],
    ['long slug', { slug: 'a'.repeat(42) }, /at most 41 are accepted/],
    [
      'slug with id',
      { slug: 'x', id: 'cbx_000000000000' },
      /remove one of them/
    ],
    [
      'bad env name',
      { 'env-forward': 'GOOD\nBAD-NAME' },
      /"BAD-NAME", which is not a variable name/
    ],
    [
      'boolean',
      { keep: 'yes' },
      /Input keep "yes" is not a boolean; use true or false/
    ],
    [
      'http non-loopback',
      { 'base-url': 'http://api.smolmachines.com' },
      /must use https/
    ],
    [
      'userinfo',
      { 'base-url': 'https://u:p@api.smolmachines.com' },
      /must not include a user name/
    ],
    [
      'query',
      { 'base-url': 'https://api.smolmachines.com?x=1' },
      /query or fragment/
    ],
    [
      'fragment',
      { 'base-url': 'https://api.smolmachines.com#f' },
      /query or fragment/
    ],
    [
      'foreign host',
      { 'base-url': 'https://smolvm.attacker.example' },
      /not an official Smol Machines endpoint/
    ],
    [
      'working dir escape',
      { 'working-directory': '../x' },
      /Input working-directory "..\/x"/
    ],
    [
      'ttl not a number',
      { 'ttl-minutes': 'forever' },
      /Input ttl-minutes "forever"/
    ],
    [
      'older-than',
      { mode: 'stop', 'older-than': 'soon' },
      /Input older-than "soon" is not a duration/
    ],
    ['stop-run', { mode: 'stop', 'stop-run': 'last' }, /Input stop-run "last"/]
  ]
  test.each(cases)('%s', (_name, inputs, message) => {
    const read = withInputs({ 'api-key': KEY, run: 'make', ...inputs })
    expect(read).toThrow(InputError)
    expect(read).toThrow(message)
  })

  test('missing key names the variables', () => {
    expect(withInputs({ run: 'x' })).toThrow(
      /CRABBOX_SMOLVM_API_KEY, SMOLMACHINES_API_KEY, SMK_API_KEY/
    )
  })

  test('mode rules', () => {
    expect(withInputs({ 'api-key': KEY, mode: 'stop' })).toThrow(
      /mode stop needs the lease ids/
    )
    expect(withInputs({ 'api-key': KEY, mode: 'status' })).toThrow(
      /exactly one sandbox/
    )
    expect(withInputs({ 'api-key': KEY, mode: 'run' })).toThrow(
      /Input run is empty/
    )
  })

  test('all problems are reported at once', () => {
    expect(
      withInputs({ 'api-key': KEY, run: 'x', cpus: 'x', network: 'y' })
    ).toThrow(/The inputs have 2 problems/)
  })
})

describe('inputs that the mode does not read are named in a warning', () => {
  test.each([
    ['list', { 'dry-run': 'true', keep: 'true' }, ['dry-run', 'keep']],
    [
      'stop',
      { id: 'cbx_000000000000', 'env-forward': 'A', 'keep-on-failure': 'true' },
      ['keep-on-failure', 'env-forward']
    ],
    ['run', { run: 'x', 'dry-run': 'true' }, ['dry-run']]
  ])('mode %s', (mode, extra, ignored) => {
    stdout.mockClear()
    withInputs({ 'api-key': KEY, mode, ...extra })()
    const warnings = stdout.mock.calls
      .map((c) => String(c[0]))
      .filter((l) => l.startsWith('::warning::'))
    for (const name of ignored) {
      expect(
        warnings.some((w) =>
          w.includes(`Input ${name} is ignored in mode ${mode}`)
        )
      ).toBe(true)
    }
    expect(warnings).toHaveLength(ignored.length)
  })
})
