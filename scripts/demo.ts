// The main job on real input: the bundled action syncs this repository's
// own checkout into a sandbox of the local smolfleet server, lists the
// sha256 and mode of every file from inside the guest, and the demo compares
// them with the host. Then the post step runs and no machine is left.

import { resolve } from 'node:path'
import { startServer } from '../server/server.js'
import { runStep } from './local-runner.js'
import {
  GUEST_LISTING_SCRIPT,
  compareListings,
  hostListing,
  parseGuestListing
} from './verify-sync.js'

const KEY = 'smk_local_demo_key_0000'
const repo = resolve(process.argv[2] ?? '.')

async function main(): Promise<void> {
  const server = await startServer({ apiKeys: [KEY] })
  console.log(`local smolfleet server at ${server.url}`)
  try {
    const inputs = {
      mode: 'run',
      run: GUEST_LISTING_SCRIPT,
      path: repo,
      'api-key': KEY,
      'base-url': server.url
    }
    const main = await runStep('main', inputs, { cwd: repo })
    for (const line of main.log.split('\n')) {
      if (!line.startsWith('FILE ') && !line.startsWith('::')) console.log(line)
    }
    const guest = parseGuestListing(main.log)
    const post = await runStep('post', inputs, { cwd: repo, state: main.state })
    console.log(post.log.trim())

    const host = await hostListing(repo)
    const problems = compareListings(host, guest)
    for (const p of problems) console.log(`MISMATCH ${p}`)
    const mismatches = problems.length
    console.log('\noutputs:', JSON.stringify(main.outputs, null, 2))
    console.log(
      `\nverified ${host.size} files (sha256 and exec bit): ${mismatches} mismatches; main exit ${main.code}, post exit ${post.code}; machines left on the server: ${server.machines().length}`
    )
    if (mismatches > 0 || main.code !== 0 || server.machines().length > 0) {
      process.exitCode = 1
    }
  } finally {
    await server.close()
  }
}

await main()
