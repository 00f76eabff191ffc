#!/usr/bin/env bash
# Install the independent tools the tests drive: OpenSSL, Java + Bouncy Castle, PostgreSQL
# server binaries (Debian packages) and the Solidity compiler + anvil (npm, in contracts/).
# Idempotent and quick when everything is present. Without root, missing Debian packages
# are reported and the tests that need them skip (CI runs as root and installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
for jar in bcprov bcpkix bcutil; do
  [ -e "/usr/share/java/$jar.jar" ] || missing+=("lib$jar-java")
done
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
command -v node >/dev/null || missing+=(nodejs npm)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: missing Debian packages (tests needing them will skip): ${missing[*]}" >&2
  fi
fi

if [ -f contracts/package.json ] && command -v npm >/dev/null; then
  if [ ! -d contracts/node_modules ] || [ contracts/package-lock.json -nt contracts/node_modules ]; then
    echo "installing npm packages in contracts/"
    npm ci --prefix contracts --no-audit --no-fund --loglevel=error
  fi
fi
