#!/usr/bin/env bash
# ringpoll's one test command: installs what the tests need, then runs every test.
#
#   tests/run.sh            (as root: the ICMP tests open raw sockets)
#
# CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: not root; ICMP tests need raw sockets (root or CAP_NET_RAW) or" >&2
    echo "  net.ipv4.ping_group_range covering your group; they will fail otherwise." >&2
fi

# Debian packages the tests use: openssl makes the TLS test certificates; iproute2's ss cuts
# a cluster link and its ip makes network namespaces; openssh-server is the real sshd the SSH
# probe is tested against (ssh-keygen makes its keys); nftables cuts a node off in the
# partition test; prometheus brings promtool, which checks the metrics and the shipped rules;
# prometheus-alertmanager is the real Alertmanager the notification test sends alerts to;
# chromium is the real browser the status page is tested in (headless);
# systemd's systemd-analyze verifies the shipped unit, man-db renders the man pages, and bash,
# zsh and fish load the completion scripts.
need=(openssl iproute2 openssh-server openssh-client nftables prometheus prometheus-alertmanager chromium systemd man-db zsh fish)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        # Only the tools: no recommended extras (prometheus recommends node-exporter), and no
        # daemon started by the install (prometheus, alertmanager and sshd would listen on every
        # address).
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

# test-hooks compiles the fault-injection hooks (RINGPOLL_TEST_PANIC_PROBE) into the binary
# the integration tests run; release builds never have them. --no-fail-fast: one failing test
# file does not hide the others' results.
cargo test --workspace --locked --no-fail-fast --features ringpoll/test-hooks
