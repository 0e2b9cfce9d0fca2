import { run } from './post-run.js'

await run()
// Exit explicitly: a kept-alive socket must not hold the job open.
process.exit(0)
