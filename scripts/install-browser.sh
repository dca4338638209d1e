#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from Debian (packages `chromium`, `chromium-driver`)
# for the browser test of the Temporal web UI (tests/e2e/test_temporal_ui.py). Does nothing when
# both are on PATH already. No browser download from elsewhere works on these machines, hence apt.
# Needs root (CI runs as root on Debian); `sudo` is used when it exists and we are not root.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
command -v chromium >/dev/null && command -v chromedriver >/dev/null
