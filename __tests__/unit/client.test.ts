import { afterAll, beforeAll, expect, test } from '@jest/globals'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startServer } from '../../server/server.js'
import type { SmolfleetServer } from '../../server/server.js'
import { SmolfleetClient } from '../../src/smolfleet/client.js'
import { backoffMs, retryAfterMs } from '../../src/smolfleet/retry.js'
import { sameOrigin } from '../../src/smolfleet/base-url.js'

const KEY = 'smk_unit_client_key_0005'
let fleet: SmolfleetServer
const sleeps: number[] = []
const logs: string[] = []

function client(baseUrl = fleet.url): SmolfleetClient {
  return new SmolfleetClient({
    baseUrl,
    apiKey: KEY,
    runtime: {
      sleep: (ms) => {
        sleeps.push(ms)
        return Promise.resolve()
      },
      log: (m) => logs.push(m),
      random: () => 0.5
    }
  })
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void
): Promise<[Server, string]> {
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`]
}

beforeAll(async () => {
  fleet = await startServer({ apiKeys: [KEY] })
})
afterAll(async () => fleet.close())

test('backoff grows, is capped, and Retry-After is honoured', () => {
  const policy = {
    attempts: 5,
    baseMs: 500,
    maxDelayMs: 8000,
    budgetMs: 60_000
  }
  expect([1, 2, 3, 4, 5, 6].map((a) => backoffMs(policy, a, () => 1))).toEqual([
    500, 1000, 2000, 4000, 8000, 8000
  ])
  expect(backoffMs(policy, 3, () => 0)).toBe(1000)
  expect(retryAfterMs('2', 0)).toBe(2000)
  expect(retryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000)
  expect(retryAfterMs('soon', 0)).toBeUndefined()
})

test('idempotent calls retry 503 and dropped connections, logging each attempt', async () => {
  sleeps.length = 0
  logs.length = 0
  fleet.faults.add({
    kind: 'status',
    status: 503,
    match: { method: 'GET' },
    times: 2
  })
  fleet.faults.add({ kind: 'drop', when: 'before', match: { method: 'GET' } })
  expect(await client().listMachines()).toEqual([])
  expect(sleeps).toEqual([375, 750, 1500])
  expect(logs).toHaveLength(3)
  expect(logs[0]).toBe(
    'smolfleet GET /v1/machines answered 503; retrying in 0.4s (attempt 2 of 5)'
  )
})

test('a 429 honours Retry-After, even for create', async () => {
  sleeps.length = 0
  fleet.faults.add({
    kind: 'status',
    status: 429,
    headers: { 'retry-after': '3' },
    match: { method: 'POST' }
  })
  const machine = await client().createMachine({
    name: 'crabbox-unit-000000000001',
    source: { type: 'image', reference: 'alpine' },
    resources: { cpus: 1, memoryMb: 512 },
    network: { mode: 'open' },
    workdir: '/workspace'
  })
  expect(sleeps).toEqual([3000])
  expect(await client().deleteMachine(machine.id)).toBe('deleted')
  expect(await client().deleteMachine(machine.id)).toBe('gone')
})

test('non-idempotent calls are not re-sent after a 503, and 4xx is never retried', async () => {
  sleeps.length = 0
  fleet.faults.add({ kind: 'status', status: 503, match: { method: 'POST' } })
  await expect(
    client().exec('mach-x', { command: 'true' }, { idempotent: false })
  ).rejects.toThrow(/answered 503/)
  await expect(client().getMachine('mach-missing')).rejects.toThrow(
    'answered 404: machine not found'
  )
  fleet.faults.add({
    kind: 'status',
    status: 422,
    body: 'over quota',
    match: { method: 'GET' }
  })
  await expect(client().listMachines()).rejects.toThrow(
    'answered 422: over quota'
  )
  expect(sleeps).toEqual([])
})

test('retries stop at the attempt limit', async () => {
  sleeps.length = 0
  fleet.faults.add({
    kind: 'status',
    status: 502,
    match: { method: 'GET' },
    times: 10
  })
  await expect(client().listMachines()).rejects.toThrow(/answered 502/)
  expect(sleeps).toHaveLength(4)
  fleet.faults.clear()
})

test('redirects: same origin followed with the key, cross origin refused before any request', async () => {
  const seen: string[] = []
  const [other, otherUrl] = await listen((req, res) => {
    seen.push(req.headers.authorization ?? '')
    res.end('[]')
  })
  const [base, baseUrl] = await listen((req, res) => {
    if (req.url === '/v1/machines') {
      res.writeHead(307, { location: '/moved' }).end()
    } else if (req.url === '/moved') {
      seen.push(`same:${req.headers.authorization ?? ''}`)
      res.writeHead(307, { location: `${otherUrl}/v1/machines` }).end()
    }
  })
  try {
    await expect(client(baseUrl).listMachines()).rejects.toThrow(
      /redirected to http:\/\/127\.0\.0\.1:\d+, another origin/
    )
    expect(seen).toEqual([`same:Bearer ${KEY}`])
  } finally {
    base.close()
    other.close()
  }
})

test('same-origin comparison uses scheme, host and effective port', () => {
  const base = 'https://api.smolmachines.com/v1'
  expect(sameOrigin(base, 'https://api.smolmachines.com/redirected')).toBe(true)
  expect(sameOrigin(base, 'https://api.smolmachines.com:443/redirected')).toBe(
    true
  )
  expect(sameOrigin(base, 'http://api.smolmachines.com/redirected')).toBe(false)
  expect(sameOrigin(base, 'https://api.smolmachines.com:8443/redirected')).toBe(
    false
  )
  expect(sameOrigin(base, 'https://sub.api.smolmachines.com/redirected')).toBe(
    false
  )
  expect(sameOrigin(base, 'https://attacker.example/redirected')).toBe(false)
})

test('exec answers: snake_case exit codes are read, a missing one is an error', async () => {
  const [srv, url] = await listen((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(
      req.url?.includes('snake')
        ? '{"exit_code":9,"output":"x"}'
        : '{"stdout":"x"}'
    )
  })
  try {
    await expect(
      client(url).exec('snake', { command: 'x' }, { idempotent: true })
    ).resolves.toEqual({ exitCode: 9, stdout: 'x', stderr: '' })
    await expect(
      client(url).exec('none', { command: 'x' }, { idempotent: true })
    ).rejects.toThrow('without an exit code')
  } finally {
    srv.close()
  }
})
