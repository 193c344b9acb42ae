#!/usr/bin/env bash
# Runs the whole streaming path on this machine with no AWS account: builds ivsctl (installing
# the C/C++ toolchain bits the audio codecs need when missing) and starts `ivsctl local`.
# Extra arguments go to `ivsctl local` (e.g. --destination rtmps://…/app/KEY, --listen 0.0.0.0:8080 --https).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# --no-default-features: without the AWS commands (the `aws` feature), so the first build skips
# the AWS SDK, which `ivsctl local` never calls. --profile local: -O1 without debug info (see
# Cargo.toml), a quarter less compile work than --release.
exec cargo run --profile local --locked --no-default-features --bin ivsctl -- local "$@"
