#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it can (root on Debian):
# headless Chromium and its driver for the browser tests. Says loudly when it cannot.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${need[*]} from Debian's packages for the browser tests..."
    (apt-get install -y -q "${need[@]}" >/tmp/tya-apt.log 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >>/tmp/tya-apt.log 2>&1; }) \
      || echo "!!! Could not install ${need[*]} (see /tmp/tya-apt.log)."
  fi
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "!!! ============================================================================="
  echo "!!! Chromium/chromedriver are missing: the BROWSER TESTS WILL FAIL, not skip."
  echo "!!! Install them (Debian: apt-get install chromium chromium-driver) and re-run."
  echo "!!! ============================================================================="
fi
exit 0
