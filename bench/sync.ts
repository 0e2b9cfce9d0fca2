// Sync benchmark against the local smolfleet server. It prints ratios
// against baselines measured in the same run, never absolute targets:
//  - speed: the action's upload (4 chunks in flight) against one chunk at a
//    time, on the same tree;
//  - memory: peak RSS growth while syncing a tree 4x larger, against the
//    smaller tree (bounded memory means a ratio near 1, not 4).

import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { SmolfleetClient } from '../src/smolfleet/client.js'
import { guestExec } from '../src/run/exec.js'
import { listSyncFiles, syncToGuest } from '../src/sync/index.js'

const KEY = 'smk_bench_key_000000'
const quiet = {
  info: (): void => undefined,
  warning: (): void => undefined,
  debug: (): void => undefined
}

async function makeTree(files: number, bytesEach: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'smolvm-bench-'))
  execFileSync('git', ['init', '-q'], { cwd: dir })
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 50}`)
    await mkdir(sub, { recursive: true })
    // Half random (incompressible), half text: a mix like real repositories.
    const half = Math.floor(bytesEach / 2)
    await writeFile(
      join(sub, `f${i}.dat`),
      Buffer.concat([randomBytes(half), Buffer.alloc(bytesEach - half, 'a')])
    )
  }
  return dir
}

async function timedSync(
  url: string,
  root: string,
  concurrency: number
): Promise<{ ms: number; peakRss: number }> {
  const client = new SmolfleetClient({ baseUrl: url, apiKey: KEY })
  const machine = await client.createMachine({
    name: `crabbox-bench-${randomBytes(6).toString('hex')}`,
    source: { type: 'image', reference: 'alpine' },
    resources: { cpus: 1, memoryMb: 512 },
    network: { mode: 'blocked' },
    workdir: '/workspace'
  })
  await client.startMachine(machine.id)
  while ((await client.getMachine(machine.id)).state !== 'running') {
    await new Promise((r) => setTimeout(r, 50))
  }
  global.gc?.()
  const base = process.memoryUsage().rss
  let peak = base
  const sampler = setInterval(
    () => (peak = Math.max(peak, process.memoryUsage().rss)),
    5
  )
  const started = performance.now()
  const list = await listSyncFiles(root, [])
  await syncToGuest({
    list,
    workdir: '/workspace',
    exec: guestExec(client, machine.id),
    log: quiet,
    concurrency
  })
  const ms = performance.now() - started
  clearInterval(sampler)
  await client.deleteMachine(machine.id)
  await client.close()
  return { ms, peakRss: peak - base }
}

// The server runs in its own process so that only the client's memory is
// measured here.
async function startServerProcess(): Promise<{
  url: string
  child: ChildProcess
}> {
  const child = spawn(
    process.execPath,
    ['build/server/index.js', '--api-key', KEY],
    { stdio: ['ignore', 'pipe', 'inherit'] }
  )
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /listening on (\S+)/.exec(d.toString())
      if (m) resolve(m[1] as string)
    })
    child.on('exit', () => reject(new Error('the server exited')))
  })
  return { url, child }
}

async function main(): Promise<void> {
  const { url, child } = await startServerProcess()
  const server = {
    url,
    close: (): Promise<void> => {
      child.kill('SIGTERM')
      return Promise.resolve()
    }
  }
  const small = await makeTree(400, 40 * 1024) // 16 MiB
  const large = await makeTree(1600, 40 * 1024) // 64 MiB
  try {
    await timedSync(server.url, small, 4) // warm-up
    const one = await timedSync(server.url, small, 1)
    const four = await timedSync(server.url, small, 4)
    const smallRun = await timedSync(server.url, small, 4)
    const largeRun = await timedSync(server.url, large, 4)
    const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`
    console.log(
      `speed: 16 MiB tree, 1 chunk in flight ${one.ms.toFixed(0)} ms, 4 in flight ${four.ms.toFixed(0)} ms -> ${(one.ms / four.ms).toFixed(2)}x`
    )
    console.log(
      `memory: peak RSS growth ${mib(smallRun.peakRss)} for 16 MiB, ${mib(largeRun.peakRss)} for 64 MiB -> ${(largeRun.peakRss / Math.max(smallRun.peakRss, 1)).toFixed(2)}x for 4x the data`
    )
    console.log(
      `throughput ratio 64 MiB vs 16 MiB (time per byte): ${(largeRun.ms / 4 / smallRun.ms).toFixed(2)}x`
    )
  } finally {
    await server.close()
    await rm(small, { recursive: true, force: true })
    await rm(large, { recursive: true, force: true })
  }
}

await main()
