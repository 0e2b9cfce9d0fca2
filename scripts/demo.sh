#!/usr/bin/env bash
# The main job, locally: builds the action, starts the local smolfleet
# server, runs dist/ as the runner would (main, then post) on this
# repository's own checkout, and checks every file that reached the guest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Setting up (npm ci on a fresh clone, then the build; about a minute)..."
. scripts/setup.sh
npm run -s build >/dev/null
npx ncc build scripts/demo.ts -o build/demo >/dev/null 2>&1
node build/demo/index.js "$@"
