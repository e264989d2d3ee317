#!/usr/bin/env bash
# Debian packages the tests need; idempotent.
set -euo pipefail
packages=(
  chromium  # the web page test drives it headless through Playwright
)
# Node and npm for JupyterHub's configurable-http-proxy (the hub tests); any Node >= 18 will do.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
