#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it can (root on Debian):
# headless Chromium and its driver for the browser tests. Says loudly when it cannot.
# Nothing is downloaded outside the package manager: the tests hand Selenium these two paths.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${need[*]} from Debian's packages for the browser tests..."
    export DEBIAN_FRONTEND=noninteractive
    (apt-get install -y -q "${need[@]}" >/tmp/tya-apt.log 2>&1 \
      || { apt-get update -q >>/tmp/tya-apt.log 2>&1 && apt-get install -y -q "${need[@]}" >>/tmp/tya-apt.log 2>&1; }) \
      || echo "!!! Could not install ${need[*]} (see /tmp/tya-apt.log)."
  fi
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "!!! ============================================================================="
  echo "!!! Chromium/chromedriver are missing: the BROWSER TESTS DID NOT RUN and will FAIL"
  echo "!!! (they never skip). Install them (Debian: apt-get install chromium"
  echo "!!! chromium-driver, as root) and run make test again."
  echo "!!! ============================================================================="
  exit 0
fi
browser_major=$(chromium --version 2>/dev/null | grep -oE '[0-9]+' | head -1)
driver_major=$(chromedriver --version 2>/dev/null | grep -oE '[0-9]+' | head -1)
echo "Browser tests: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
if [ -n "$browser_major" ] && [ "$browser_major" != "$driver_major" ]; then
  echo "!!! chromium ($browser_major) and chromedriver ($driver_major) differ: upgrade both together (apt-get install chromium chromium-driver)."
fi
exit 0
