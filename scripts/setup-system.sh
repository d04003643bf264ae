#!/usr/bin/env bash
# System packages the tests talk to (real servers on loopback). Idempotent; needs root or sudo.
set -euo pipefail

packages=(
    xrootd-server xrootd-client   # remote reads with root://
    globus-proxy-utils voms-clients-java   # X.509 proxies made by the external tools
    oidc-agent-cli                # tokens for the operator CLI
    podman runc catatonit debootstrap   # containers: executor, images, the local target
    bubblewrap                    # the job sandbox of the local and Dask executors
    openssh-server                # the "VM" of the SSH login/run tests
    curl wrk                      # TFaaS curl-compatibility tests and its benchmark
    docker-registry               # a container registry: images push, deployments pulling
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# podman: crun fails on hybrid cgroups and default ulimits cannot be set in some sandboxes.
conf=/etc/containers/containers.conf
if [ ! -f "$conf" ]; then
    $sudo mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' | $sudo tee "$conf" >/dev/null
elif ! grep -q 'runtime *= *"runc"' "$conf"; then
    echo "warning: $conf does not select runc; podman may fail here" >&2
fi
