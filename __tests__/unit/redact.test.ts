import { expect, test } from '@jest/globals'
import {
  looksSecret,
  redact,
  registerSecret
} from '../../src/security/redact.js'

test('registered secrets and their bearer echoes are removed', () => {
  registerSecret('smolvm-secret-token')
  expect(
    redact('{"message":"Bearer smolvm-secret-token quota exceeded"}')
  ).toBe('{"message":"Bearer [redacted] quota exceeded"}')
})

test('secret-looking fields, headers, queries and urls', () => {
  expect(redact('{"apiKey":"abc123","ok":"yes"}')).toBe(
    '{"apiKey":"[redacted]","ok":"yes"}'
  )
  expect(redact('authorization: Bearer xyz.abc')).toBe(
    'authorization: Bearer [redacted]'
  )
  expect(redact('GET /x?token=abcdef&b=1')).toBe('GET /x?token=[redacted]&b=1')
  expect(redact('https://user:pw@host/x')).toBe('https://[redacted]@host/x')
  expect(redact('key smk_another_account_key1')).toBe('key [redacted]')
  expect(redact('password=hunter2 next')).toBe('password=[redacted] next')
  expect(
    redact(
      '-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----'
    )
  ).toBe('[redacted]')
})

test('workflow expressions in our own hints survive', () => {
  expect(
    redact('pass the key with api-key: ${{ secrets.SMOLMACHINES_API_KEY }}.')
  ).toBe('pass the key with api-key: ${{ secrets.SMOLMACHINES_API_KEY }}.')
})

test('plain text is left alone', () => {
  expect(redact('machine not found')).toBe('machine not found')
})

test('secret-looking names', () => {
  for (const n of [
    'API_KEY',
    'GH_TOKEN',
    'DB_PASSWORD',
    'AWS_SECRET',
    'MY_CREDENTIALS',
    'AUTH_HEADER'
  ]) {
    expect(looksSecret(n)).toBe(true)
  }
  for (const n of ['NODE_ENV', 'AUTHOR_NAME', 'BYPASS_CACHE', 'MONKEY_MODE']) {
    expect(looksSecret(n)).toBe(false)
  }
  expect(looksSecret('NPM_AUTH_TOKEN')).toBe(true)
  expect(looksSecret('SSHKEY')).toBe(true)
})
