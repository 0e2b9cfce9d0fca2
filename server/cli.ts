// Runs the local smolfleet server as a process, for the demo and for
// end-to-end runs of the bundled action:
//   node build/server/index.js [--port N] [--api-key K]...
// SMOLFLEET_PORT and SMOLFLEET_API_KEY work as defaults for the flags.

import { startServer, type ServerOptions } from './server.js'
import { errorMessage } from './errors.js'

function parseArgs(argv: string[], env: NodeJS.ProcessEnv): ServerOptions {
  const options: ServerOptions = {}
  const apiKeys: string[] = []
  const scopelessKeys: string[] = []
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i] ?? ''
    const value = argv[i + 1]
    if (value === undefined || value.startsWith('--')) {
      throw new Error(`${flag} needs a value`)
    }
    i += 1
    switch (flag) {
      case '--port':
        options.port = number(flag, value)
        break
      case '--api-key':
        apiKeys.push(value)
        break
      case '--scopeless-key':
        scopelessKeys.push(value)
        break
      case '--max-machines':
        options.maxMachines = number(flag, value)
        break
      case '--start-delay-ms':
        options.startDelayMs = number(flag, value)
        break
      case '--data-dir':
        options.dataDir = value
        break
      default:
        throw new Error(
          `unknown option ${flag}; accepted: --port N, --api-key K, ` +
            '--scopeless-key K, --max-machines N, --start-delay-ms N, ' +
            '--data-dir DIR'
        )
    }
  }

  if (options.port === undefined && env.SMOLFLEET_PORT) {
    options.port = number('SMOLFLEET_PORT', env.SMOLFLEET_PORT)
  }
  if (apiKeys.length === 0 && env.SMOLFLEET_API_KEY) {
    apiKeys.push(env.SMOLFLEET_API_KEY)
  }
  if (apiKeys.length > 0) options.apiKeys = apiKeys
  if (scopelessKeys.length > 0) options.scopelessKeys = scopelessKeys
  return options
}

function number(name: string, value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${value}`)
  }
  return parsed
}

async function main(): Promise<void> {
  const server = await startServer(
    parseArgs(process.argv.slice(2), process.env)
  )
  process.stdout.write(`smolfleet listening on ${server.url}\n`)

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`smolfleet: close failed: ${String(error)}\n`)
        process.exit(1)
      }
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch((error: unknown) => {
  const message = errorMessage(error)
  process.stderr.write(`smolfleet: ${message}\n`)
  process.exit(1)
})
