#!/usr/bin/env bash
# The local OpenID provider the tests run (npm oidc-provider, pinned by package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d tests/support/oidc/node_modules/oidc-provider ]; then
    npm ci --prefix tests/support/oidc --no-audit --no-fund --silent
fi
