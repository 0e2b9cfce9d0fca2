#!/usr/bin/env bash
# Runs every test on a fresh clone: installs the guest tools of the local
# smolfleet server (bubblewrap, busybox-static) and the npm packages when
# missing, builds dist/ (the end-to-end tests run the bundles), then jest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Setting up (npm ci on a fresh clone, then the build)..."
. scripts/setup.sh
npm run -s build >/dev/null
npm test -- "$@"
