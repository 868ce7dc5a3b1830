#!/usr/bin/env bash
# The system packages the tests use (real DNS server, headless browser, packet
# filter). Installs the missing ones with apt-get when it can (root or sudo),
# otherwise stops in one line naming them, before any test runs.
set -euo pipefail

declare -A PACKAGE_OF=(
  [dnsmasq]=dnsmasq-base
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [iptables]=iptables
)
missing=()
for command in dnsmasq chromium chromedriver iptables; do
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("${PACKAGE_OF[$command]}")
done
# The image tests (make test-image): a Docker engine, compose, a local base.
if [ -n "${ECSGRPC_SYSTEM_DEPS_IMAGE:-}" ]; then
  for pair in dockerd=docker.io docker-compose=docker-compose debootstrap=debootstrap; do
    command="${pair%%=*}"
    command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("${pair#*=}")
  done
fi
# Packages other parts of the suite add here: one "command=package" per line.
if [ -f scripts/system_deps.extra ]; then
  while IFS='=' read -r command package; do
    [ -n "$command" ] || continue
    case "$command" in \#*) continue ;; esac
    command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("$package")
  done < scripts/system_deps.extra
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "make test: missing system packages: ${missing[*]} (install them: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "make test: missing system packages: ${missing[*]} (no apt-get here: install them with your package manager)" >&2
  exit 1
fi
echo "make test: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/ecsgrpc-apt.log 2>&1; then
  echo "make test: could not install ${missing[*]} (apt-get failed: see /tmp/ecsgrpc-apt.log)" >&2
  exit 1
fi
