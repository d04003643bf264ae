#!/usr/bin/env bash
# The development OpenID provider (npm oidc-provider, pinned by package-lock.json): the local
# target and the tests run it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d images/dev-oidc/node_modules/oidc-provider ]; then
    npm ci --prefix images/dev-oidc --no-audit --no-fund --silent
fi
