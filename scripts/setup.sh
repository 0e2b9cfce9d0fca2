# Sourced by test.sh and demo.sh: installs what a fresh clone needs.
if ! command -v bwrap >/dev/null || ! command -v busybox >/dev/null; then
  echo "Installing bubblewrap and busybox-static (the local server's guest)..."
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq bubblewrap busybox-static >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
