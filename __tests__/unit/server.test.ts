// The local smolfleet server against the API reference: statuses, bodies,
// guests under bubblewrap, faults, and a clean close.

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals'
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { startServer, type SmolfleetServer } from '../../server/server.js'

const KEY = 'smk_local_test_key'
const ALPINE = { type: 'image', reference: 'alpine' }

interface Exec {
  exitCode: number
  stdout: string
  stderr: string
}

let server: SmolfleetServer

beforeAll(async () => {
  server = await startServer({ startDelayMs: 50 })
})

afterAll(async () => {
  await server.close()
})

function call(
  path: string,
  init: RequestInit = {},
  base: SmolfleetServer = server
): Promise<Response> {
  const headers = new Headers(init.headers)
  if (!headers.has('authorization'))
    headers.set('authorization', `Bearer ${KEY}`)
  return fetch(`${base.url}${path}`, { ...init, headers })
}

function post(path: string, body: unknown): Promise<Response> {
  return call(path, { method: 'POST', body: JSON.stringify(body) })
}

async function createMachine(
  body: Record<string, unknown> = {}
): Promise<string> {
  const res = await post('/v1/machines', { source: ALPINE, ...body })
  expect(res.status).toBe(201)
  return ((await res.json()) as { id: string }).id
}

async function waitForState(id: string, wanted: string): Promise<string[]> {
  const seen: string[] = []
  for (let i = 0; i < 100; i += 1) {
    const res = await call(`/v1/machines/${id}`)
    const state = ((await res.json()) as { state: string }).state
    if (seen.at(-1) !== state) seen.push(state)
    if (state === wanted) return seen
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`machine ${id} never reached ${wanted}: ${seen.join(', ')}`)
}

async function runningMachine(
  body: Record<string, unknown> = {}
): Promise<string> {
  const id = await createMachine(body)
  expect((await post(`/v1/machines/${id}/start`, {})).status).toBe(200)
  await waitForState(id, 'running')
  return id
}

async function exec(id: string, body: Record<string, unknown>): Promise<Exec> {
  const res = await post(`/v1/machines/${id}/exec`, body)
  expect(res.status).toBe(200)
  return (await res.json()) as Exec
}

describe('machines', () => {
  test('create answers the record, start goes starting then running', async () => {
    const res = await post('/v1/machines', {
      name: 'lifecycle-1',
      source: ALPINE,
      resources: { cpus: 2 },
      cpus: 8
    })
    expect(res.status).toBe(201)
    expect(res.headers.get('x-ratelimit-remaining')).toMatch(/^\d+$/)
    const record = (await res.json()) as Record<string, unknown>
    expect(record).toMatchObject({
      name: 'lifecycle-1',
      state: 'stopped',
      source: ALPINE,
      resources: { cpus: 2, memoryMb: 512, diskGb: 10 },
      network: { mode: 'open' },
      workdir: '/workspace'
    })
    expect(record.id).toMatch(/^mach-[0-9a-f]{16}$/)
    expect(typeof record.createdAt).toBe('string')
    const id = record.id as string

    const start = await post(`/v1/machines/${id}/start`, {})
    expect(start.status).toBe(200)
    expect(await start.json()).toEqual({})
    expect(await waitForState(id, 'running')).toEqual(['starting', 'running'])
    expect((await post(`/v1/machines/${id}/start`, {})).status).toBe(200)

    const list = (await (await call('/v1/machines')).json()) as { id: string }[]
    expect(list.map((m) => m.id)).toContain(id)
    expect(server.machines().find((m) => m.id === id)?.state).toBe('running')

    expect(
      (await call(`/v1/machines/${id}`, { method: 'DELETE' })).status
    ).toBe(204)
    const gone = await call(`/v1/machines/${id}`)
    expect(gone.status).toBe(404)
    expect(await gone.text()).toBe('machine not found')
  })

  test('delete with includeUsage answers 200 with the usage', async () => {
    const id = await runningMachine()
    const res = await call(`/v1/machines/${id}?includeUsage=true`, {
      method: 'DELETE'
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ id, usage: { execCalls: 0 } })
  })

  test('ttlSeconds deletes the machine by itself', async () => {
    const id = await createMachine({ ttlSeconds: 1 })
    expect(existsSync(server.guestPath(id, '/workspace'))).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 1300))
    expect((await call(`/v1/machines/${id}`)).status).toBe(404)
    expect(existsSync(server.guestPath(id, '/workspace'))).toBe(false)
  })
})

describe('exec', () => {
  let id: string
  beforeAll(async () => {
    id = await runningMachine({ env: { FROM_MACHINE: 'm' } })
  })

  test('a string runs under sh in the workdir as root', async () => {
    const result = await exec(id, {
      command: 'echo "$FROM_MACHINE $GREETING"; pwd; id -u; echo oops >&2',
      env: { GREETING: 'hi' }
    })
    expect(result).toEqual({
      exitCode: 0,
      stdout: 'm hi\n/workspace\n0\n',
      stderr: 'oops\n'
    })
  })

  test('exit codes come back in a 200', async () => {
    expect((await exec(id, { command: 'exit 23' })).exitCode).toBe(23)
    const missing = await exec(id, { command: ['no-such-tool', '-v'] })
    expect(missing.exitCode).toBe(255)
    expect(missing.stderr).toContain('no-such-tool')
    const argv = await exec(id, { command: ['printf', '%s|', 'a b', '$HOME'] })
    expect(argv).toMatchObject({ exitCode: 0, stdout: 'a b|$HOME|' })
  })

  test('timeoutSeconds kills the command with 124', async () => {
    const started = Date.now()
    const result = await exec(id, {
      command: 'echo before; sleep 5; echo after',
      timeoutSeconds: 1
    })
    expect(result.exitCode).toBe(124)
    expect(result.stdout).toBe('before\n')
    expect(Date.now() - started).toBeLessThan(3000)
  })

  test('cwd and stdin', async () => {
    await exec(id, { command: 'mkdir -p /workspace/sub' })
    const inSub = await exec(id, {
      command: 'pwd; cat',
      cwd: '/workspace/sub',
      stdin: 'in\n'
    })
    expect(inSub.stdout).toBe('/workspace/sub\nin\n')
    const missing = await exec(id, { command: 'pwd', cwd: '/workspace/nope' })
    expect(missing.exitCode).toBe(1)
    expect(missing.stderr).toContain("can't cd to /workspace/nope")
  })

  test('a command string over 128 KiB fails with argument list too long', async () => {
    // The guest shell execs `sh -c <command>`; the kernel refuses one
    // argument over MAX_ARG_STRLEN, and the answer is still a 200.
    const payload = 'a'.repeat(200 * 1024)
    const big = await exec(id, { command: `echo ${payload} | wc -c` })
    expect(big.exitCode).toBe(126)
    expect(big.stdout).toBe('')
    expect(big.stderr).toMatch(/argument list too long/i)

    const fits = await exec(id, {
      command: `echo ${'a'.repeat(120 * 1024)} | wc -c`
    })
    expect(fits).toMatchObject({
      exitCode: 0,
      stdout: `${String(120 * 1024 + 1)}\n`
    })
  })

  test('a command outlives a client that hangs up', async () => {
    const abort = new AbortController()
    const pending = call(`/v1/machines/${id}/exec`, {
      method: 'POST',
      body: JSON.stringify({ command: 'sleep 0.4; touch /workspace/finished' }),
      signal: abort.signal
    })
    setTimeout(() => {
      abort.abort()
    }, 100)
    await expect(pending).rejects.toThrow()
    const finished = server.guestPath(id, '/workspace/finished')
    expect(existsSync(finished)).toBe(false)
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(existsSync(finished)).toBe(true)
  })

  test('exec on a stopped machine is a 409', async () => {
    const stopped = await createMachine()
    const res = await post(`/v1/machines/${stopped}/exec`, { command: 'true' })
    expect(res.status).toBe(409)
    expect(await res.text()).toBe('machine is not running (state: stopped)')
  })

  test('the request log keeps the command, not the key', async () => {
    server.clearRequests()
    await exec(id, { command: `echo ${'x'.repeat(300)}` })
    const [entry] = server.requests()
    expect(entry).toMatchObject({
      method: 'POST',
      path: `/v1/machines/${id}/exec`,
      status: 200
    })
    expect(entry?.command).toHaveLength(200)
    expect(entry?.bodyBytes).toBeGreaterThan(300)
    expect(JSON.stringify(server.requests())).not.toContain(KEY)
  })

  test('the stream sends output live, then the exit code', async () => {
    const started = Date.now()
    const res = await post(`/v1/machines/${id}/exec/stream`, {
      command:
        'echo one; sleep 1; printf "two\\nthree\\n"; echo bad >&2; exit 7'
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    if (res.body === null) throw new Error('the stream has no body')
    const reader = res.body.getReader()
    const first = await reader.read()
    expect(Date.now() - started).toBeLessThan(900)
    let raw = new TextDecoder().decode(first.value as Uint8Array)
    for (
      let chunk = await reader.read();
      !chunk.done;
      chunk = await reader.read()
    ) {
      raw += new TextDecoder().decode(chunk.value as Uint8Array)
    }
    expect(raw.startsWith('event: stdout\ndata: one\ndata: \n\n')).toBe(true)
    const events = parseEvents(raw)
    const joined = (name: string): string =>
      events
        .filter((e) => e.event === name)
        .map((e) => e.data)
        .join('')
    expect(joined('stdout')).toBe('one\ntwo\nthree\n')
    expect(joined('stderr')).toBe('bad\n')
    expect(events.at(-1)).toEqual({ event: 'exit', data: '{"exitCode":7}' })
  })
})

describe('guests', () => {
  test('files go in and out as raw bytes', async () => {
    const id = await runningMachine()
    const data = Buffer.from([0, 1, 2, 255, 10])
    const put = await call(`/v1/machines/${id}/files/workspace/d/data.bin`, {
      method: 'PUT',
      body: data
    })
    expect(put.status).toBe(204)
    const sum = await exec(id, { command: 'od -An -tu1 /workspace/d/data.bin' })
    expect(sum.stdout.trim().split(/\s+/)).toEqual(['0', '1', '2', '255', '10'])
    expect(
      await fs.readFile(server.guestPath(id, '/workspace/d/data.bin'))
    ).toEqual(data)

    await exec(id, { command: 'printf made > /tmp/made.txt' })
    const got = await call(`/v1/machines/${id}/files/tmp/made.txt`)
    expect(got.status).toBe(200)
    expect(await got.text()).toBe('made')
    expect((await call(`/v1/machines/${id}/files/tmp/none`)).status).toBe(404)
    const slash = await call(`/v1/machines/${id}/files//etc/passwd`)
    expect(slash.status).toBe(400)

    // A link made in the guest resolves inside the guest, not on the host.
    await exec(id, { command: 'ln -s / /workspace/top' })
    const passwd = await call(
      `/v1/machines/${id}/files/workspace/top/etc/passwd`
    )
    expect(await passwd.text()).toMatch(
      /^root:x:0:0:root:\/root:\/bin\/sh\n[^\n]*\n$/
    )
  })

  test('machines do not see each other and stop wipes only /tmp', async () => {
    const one = await runningMachine()
    const two = await runningMachine()
    await exec(one, { command: 'echo 1 > /workspace/w; echo 1 > /tmp/t' })
    const look =
      'cat /workspace/w /tmp/t 2>/dev/null; ls -A /workspace; ls -A /tmp'
    expect((await exec(two, { command: look })).stdout).toBe('')
    expect((await exec(one, { command: look })).stdout).toBe('1\n1\nw\nt\n')

    expect((await post(`/v1/machines/${one}/stop`, {})).status).toBe(200)
    expect(server.machines().find((m) => m.id === one)?.state).toBe('stopped')
    await post(`/v1/machines/${one}/start`, {})
    await waitForState(one, 'running')
    const after = await exec(one, { command: 'cat /workspace/w; ls -A /tmp' })
    expect(after.stdout).toBe('1\n')
  })

  test('a blocked network has only loopback', async () => {
    const interfaces = 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'
    const blocked = await runningMachine({ network: { mode: 'blocked' } })
    const open = await runningMachine({ network: { mode: 'open' } })
    expect((await exec(blocked, { command: interfaces })).stdout).toBe('lo\n')
    const openNames = (await exec(open, { command: interfaces })).stdout
    expect(
      openNames.split('\n').filter((n) => n !== '' && n !== 'lo').length
    ).toBeGreaterThan(0)
  })
})

describe('errors', () => {
  test('auth: no key, unknown key, scopeless key', async () => {
    const none = await fetch(`${server.url}/v1/machines`)
    expect(none.status).toBe(401)
    expect(await none.text()).toBe('')
    expect(none.headers.get('x-ratelimit-remaining')).not.toBeNull()

    const unknown = await call('/v1/machines', {
      headers: { authorization: 'Bearer smk_nope' }
    })
    expect(unknown.status).toBe(401)
    expect(await unknown.json()).toEqual({ code: 'unknown_key' })

    const other = await startServer({ scopelessKeys: ['smk_scopeless'] })
    try {
      const res = await call(
        '/v1/machines',
        { headers: { authorization: 'Bearer smk_scopeless' } },
        other
      )
      expect(res.status).toBe(403)
      expect(await res.text()).toBe('key lacks scope machines:write')
    } finally {
      await other.close()
    }
  })

  test('bodies and routes', async () => {
    const notJson = await call('/v1/machines', {
      method: 'POST',
      body: '{nope'
    })
    expect(notJson.status).toBe(400)
    expect(notJson.headers.get('content-type')).toMatch(/^text\/plain/)

    const image = await post('/v1/machines', {
      image: 'alpine',
      source: ALPINE
    })
    expect(image.status).toBe(422)
    expect(await image.text()).toContain('image')
    for (const body of [
      { source: { type: 'docker', reference: 'alpine' } },
      { source: ALPINE, name: 'Bad_Name' },
      { source: ALPINE, resources: { memoryMb: -1 } },
      { source: ALPINE, network: { mode: 'sometimes' } }
    ]) {
      expect((await post('/v1/machines', body)).status).toBe(422)
    }

    await createMachine({ name: 'dupe' })
    const dupe = await post('/v1/machines', { name: 'dupe', source: ALPINE })
    expect(dupe.status).toBe(409)
    expect(await dupe.text()).toBe('machine name already exists: dupe')

    const missing = await post('/v1/machines/mach-0000000000000000/start', {})
    expect(missing.status).toBe(404)
    expect(await missing.text()).toBe('machine not found')

    const route = await call('/v1/snapshots')
    expect(route.status).toBe(501)
    expect(await route.text()).toBe('not implemented')
  })

  test('maxMachines answers 422 past the quota', async () => {
    const small = await startServer({ maxMachines: 1 })
    try {
      const create = (): Promise<Response> =>
        call(
          '/v1/machines',
          { method: 'POST', body: JSON.stringify({ source: ALPINE }) },
          small
        )
      expect((await create()).status).toBe(201)
      const over = await create()
      expect(over.status).toBe(422)
      expect(await over.text()).toMatch(/^machine quota exceeded: /)
    } finally {
      await small.close()
    }
  })
})

describe('faults', () => {
  test('status faults answer instead of the API, then stop', async () => {
    server.faults.add({
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '2' },
      body: 'slow down',
      match: { method: 'GET', path: '^/v1/machines$' }
    })
    const limited = await call('/v1/machines')
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('2')
    expect(await limited.text()).toBe('slow down')
    expect((await call('/v1/machines')).status).toBe(200)

    server.faults.add({
      kind: 'status',
      status: 503,
      body: '{"error":"busy"}',
      times: 2
    })
    for (let i = 0; i < 2; i += 1) {
      const res = await call('/v1/machines')
      expect(res.status).toBe(503)
      expect(await res.json()).toEqual({ error: 'busy' })
    }
    expect((await call('/v1/machines')).status).toBe(200)
  })

  test('drop before loses the request, drop after loses only the answer', async () => {
    const count = (): number => server.machines().length
    const before = count()
    server.faults.add({
      kind: 'drop',
      when: 'before',
      match: { method: 'POST' }
    })
    await expect(post('/v1/machines', { source: ALPINE })).rejects.toThrow()
    expect(count()).toBe(before)

    server.faults.add({
      kind: 'drop',
      when: 'after',
      match: { path: '^/v1/machines$' }
    })
    await expect(
      post('/v1/machines', { name: 'lost-answer', source: ALPINE })
    ).rejects.toThrow()
    expect(server.machines().some((m) => m.name === 'lost-answer')).toBe(true)

    const id = await runningMachine()
    server.faults.add({
      kind: 'drop',
      when: 'after',
      match: { path: '/exec$' }
    })
    await expect(
      post(`/v1/machines/${id}/exec`, { command: 'touch /workspace/ran' })
    ).rejects.toThrow()
    expect(existsSync(server.guestPath(id, '/workspace/ran'))).toBe(true)
  })

  test('delay waits before handling', async () => {
    server.faults.add({
      kind: 'delay',
      ms: 300,
      match: { path: '^/v1/machines$' }
    })
    const started = Date.now()
    expect((await call('/v1/machines')).status).toBe(200)
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
  })

  test('start faults: errorState, slowStart, stuckStart', async () => {
    server.faults.add({ kind: 'errorState' })
    const broken = await createMachine()
    await post(`/v1/machines/${broken}/start`, {})
    expect(await waitForState(broken, 'error')).toEqual(['starting', 'error'])

    server.faults.add({ kind: 'slowStart', ms: 400 })
    const slow = await createMachine()
    const started = Date.now()
    await post(`/v1/machines/${slow}/start`, {})
    await waitForState(slow, 'running')
    expect(Date.now() - started).toBeGreaterThanOrEqual(390)

    server.faults.add({ kind: 'stuckStart' })
    const stuck = await createMachine()
    await post(`/v1/machines/${stuck}/start`, {})
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(server.machines().find((m) => m.id === stuck)?.state).toBe(
      'starting'
    )
  })

  test('maxBodyBytes answers 413', async () => {
    server.faults.maxBodyBytes = 100
    try {
      const res = await post('/v1/machines', {
        source: ALPINE,
        pad: 'x'.repeat(200)
      })
      expect(res.status).toBe(413)
      expect(await res.text()).toBe('request body too large')
    } finally {
      server.faults.maxBodyBytes = undefined
    }
  })

  test('the control endpoints work over HTTP', async () => {
    const control = (
      path: string,
      method: string,
      body?: unknown
    ): Promise<Response> =>
      fetch(`${server.url}/_control/${path}`, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body)
      })
    const add = await control('faults', 'POST', [
      {
        kind: 'status',
        status: 500,
        match: { path: '/v1/machines$' },
        times: -1
      }
    ])
    expect(add.status).toBe(204)
    for (let i = 0; i < 3; i += 1) {
      expect((await call('/v1/machines')).status).toBe(500)
    }
    expect((await control('faults', 'DELETE')).status).toBe(204)
    expect((await call('/v1/machines')).status).toBe(200)

    expect((await control('max-body-bytes', 'PUT', { bytes: 10 })).status).toBe(
      204
    )
    expect((await post('/v1/machines', { source: ALPINE })).status).toBe(413)
    expect(
      (await control('max-body-bytes', 'PUT', { bytes: null })).status
    ).toBe(204)

    const log = (await (await control('requests', 'GET')).json()) as {
      status: number
    }[]
    expect(log.at(-1)?.status).toBe(413)
    const machines = (await (
      await control('machines', 'GET')
    ).json()) as unknown[]
    expect(machines.length).toBe(server.machines().length)
    expect((await control('faults', 'POST', { kind: 'nope' })).status).toBe(400)
  })
})

test('close kills running commands and removes every guest dir', async () => {
  const own = await startServer({ startDelayMs: 0 })
  const id = await (async (): Promise<string> => {
    const res = await call(
      '/v1/machines',
      { method: 'POST', body: JSON.stringify({ source: ALPINE }) },
      own
    )
    return ((await res.json()) as { id: string }).id
  })()
  await call(`/v1/machines/${id}/start`, { method: 'POST' }, own)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const root = path.dirname(own.guestPath(id, '/workspace'))
  const pending = call(
    `/v1/machines/${id}/exec`,
    { method: 'POST', body: JSON.stringify({ command: 'sleep 31.337' }) },
    own
  ).catch(() => undefined)
  await new Promise((resolve) => setTimeout(resolve, 200))
  expect(await processesWith('31.337')).toBe(1)

  await own.close()
  await pending
  expect(existsSync(root)).toBe(false)
  expect(existsSync(path.dirname(root))).toBe(false)
  expect(await processesWith('31.337')).toBe(0)
  expect(await childProcesses()).toEqual([])
})

function parseEvents(raw: string): { event: string; data: string }[] {
  return raw
    .split('\n\n')
    .filter((block) => block !== '')
    .map((block) => {
      const lines = block.split('\n')
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? ''
      const data = lines
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n')
      return { event, data }
    })
}

async function processesWith(marker: string): Promise<number> {
  let count = 0
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const cmdline = await fs
      .readFile(`/proc/${pid}/cmdline`, 'utf8')
      .catch(() => '')
    if (cmdline.split('\0').includes(marker)) count += 1
  }
  return count
}

async function childProcesses(): Promise<string[]> {
  const children: string[] = []
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[1] === String(process.pid)) {
      children.push(stat.slice(0, stat.lastIndexOf(')') + 1))
    }
  }
  return children
}
