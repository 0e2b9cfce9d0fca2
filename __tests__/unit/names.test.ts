import { expect, test } from '@jest/globals'
import {
  MACHINE_NAME,
  RUN_MARKER,
  collisionSuffix,
  generatedSlug,
  newIdentity,
  normalizeSlug,
  parseMachineName
} from '../../src/lifecycle/names.js'

test('generated slugs match Crabbox vectors', () => {
  expect(generatedSlug('cbx_123456789abc')).toBe('tidal-krill')
  expect(generatedSlug('cbx_000000000000')).toBe('coral-shrimp')
  expect(generatedSlug('cbx_abcdef012345')).toBe('blue-crayfish')
})

test('collision suffix matches Crabbox vectors', () => {
  expect(collisionSuffix('cbx_123456789abc-0')).toBe('bd71')
  expect(collisionSuffix('cbx_123456789abc')).toBe('3034')
})

test('normalisation', () => {
  expect(normalizeSlug('  Hello__World  ')).toBe('hello-world')
  expect(normalizeSlug('---')).toBe('')
})

test('outside a workflow run the name is plain Crabbox', () => {
  const id = newIdentity('smoke', {}, false, 'cbx_123456789abc')
  expect(id).toEqual({
    leaseId: 'cbx_123456789abc',
    slug: 'smoke',
    name: 'crabbox-smoke-123456789abc'
  })
  expect(parseMachineName(id.name)).toEqual({
    leaseId: 'cbx_123456789abc',
    slug: 'smoke'
  })
})

test('inside a run the slug carries a per-lease suffix and the run marker', () => {
  const env = { GITHUB_RUN_ID: '987654321', GITHUB_RUN_ATTEMPT: '2' }
  const a = newIdentity('tests', env, false, 'cbx_aaaaaaaaaaaa')
  const b = newIdentity('tests', env, false, 'cbx_bbbbbbbbbbbb')
  expect(a.slug).toMatch(/^tests-[0-9a-f]{4}-gh987654321-2$/)
  expect(a.slug).not.toBe(b.slug)
  expect(MACHINE_NAME.test(a.name)).toBe(true)
  expect(RUN_MARKER.exec(a.slug)?.slice(1)).toEqual([
    '987654321',
    '2',
    undefined
  ])
  const kept = newIdentity('tests', env, true, 'cbx_aaaaaaaaaaaa')
  expect(kept.slug).toMatch(/-gh987654321-2-keep$/)
  expect(RUN_MARKER.exec(kept.slug)?.[3]).toBe('-keep')
})

test('foreign names are not ours', () => {
  expect(parseMachineName('external-machine')).toBeUndefined()
  expect(parseMachineName('crabbox-x-12345')).toBeUndefined()
})
