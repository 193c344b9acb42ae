#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what the tests need when it
# is missing (ffmpeg, nginx with its stream and RTMP modules, Chromium, cmake, Node's
# playwright-core, a Python venv with moto, an OCI registry and dnsmasq for the image tests),
# builds everything once plus the static relay, checks formatting and lints, then runs the tests
# (on loopback only).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- system packages -------------------------------------------------------------------------
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
command -v nginx >/dev/null || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || missing+=(libnginx-mod-rtmp)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the AWS emulator (moto) in a venv of its own ---------------------------------------------
venv=.venv
if ! "$venv/bin/python" -c 'import moto.server' 2>/dev/null; then
  log "installing moto into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
export MOTO_PYTHON="$PWD/$venv/bin/python"

# --- the browser driver -------------------------------------------------------------------------
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  log "installing playwright-core (driver only: the browser is Debian's chromium)"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

# --- build, lint ---------------------------------------------------------------------------------
log "format"
cargo fmt --all -- --check
log "build"
cargo build --workspace --all-targets --locked
log "static relay and Lambda bootstrap (what deploy ships)"
cargo static --locked
log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- test ---------------------------------------------------------------------------------------
# Every test talks to 127.0.0.1 only: the relay under test listens on loopback and gathers
# loopback ICE candidates only.
log "test"
cargo test --workspace --locked --offline --no-fail-fast
