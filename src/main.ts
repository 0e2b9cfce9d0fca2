import { run } from './main-run.js'

await run()
// Sockets or timers of a cancelled request must not keep the step alive.
process.exit()
