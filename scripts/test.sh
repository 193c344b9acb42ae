#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what the tests need when it
# is missing (ffmpeg, nginx with its stream and RTMP modules, Chromium, cmake, Node's
# playwright-core, a Python venv with moto, an OCI registry and dnsmasq for the image tests),
# builds everything once (linting our crates with clippy as it goes) plus the static relay, checks
# formatting, then runs the tests (on loopback only).
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
# Clippy lints the workspace's crates while they are built, rather than in a `cargo clippy` of
# its own, which type-checks every dependency a second time (8.5 minutes of a cold run on 2
# cores, the AWS SDK most of it): clippy-driver compiles like rustc, and as cargo's workspace
# wrapper it only sees our crates. CLIPPY_ARGS is how `cargo clippy` hands the driver its flags.
# Every cargo command below carries the same wrapper, so none rebuilds what another built.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
[ -x "$RUSTC_WORKSPACE_WRAPPER" ] || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
log "format"
cargo fmt --all -- --check
log "build and clippy -D warnings"
cargo build --workspace --all-targets --locked
log "static relay and Lambda bootstrap (what deploy ships)"
cargo static --locked

# --- test ---------------------------------------------------------------------------------------
# Every test talks to 127.0.0.1 only: the relay under test listens on loopback and gathers
# loopback ICE candidates only.
log "test"
cargo test --workspace --locked --offline --no-fail-fast
