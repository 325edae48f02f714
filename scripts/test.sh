#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then checks
# formatting, lints (warnings are errors) and runs every test in one cargo invocation.
# Usage: ./scripts/test.sh            (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- prerequisites -----------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
# cargo-nextest runs the suite with per-test timeouts; fall back to cargo test without it.
have_nextest=0
if cargo nextest --version >/dev/null 2>&1; then have_nextest=1; fi

# Debian packages some tests use when present (the OWASP CRS rules for the WAF loader).
# Installed only when running as root on a Debian-like system; tests skip cleanly otherwise.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if [ ! -d /usr/share/modsecurity-crs ]; then
    log "installing modsecurity-crs (Debian) for the WAF's CRS tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq modsecurity-crs >/dev/null) \
      || echo "warning: could not install modsecurity-crs; CRS tests will be skipped"
  fi
fi

# --- checks ------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

log "tests"
if [ "$have_nextest" = 1 ]; then
  cargo nextest run --workspace --profile ci
else
  cargo test --workspace
fi
