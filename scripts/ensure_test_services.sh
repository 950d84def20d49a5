#!/usr/bin/env bash
# Installs what the test suite needs from Debian's packages when it can (root on Debian):
# headless Chromium and its driver for the browser tests, and the PostgreSQL server the analytics
# store is tested against (the tests start a throwaway cluster of their own on loopback, on a free
# port, and remove it afterwards; see tests/pg_server.py). Says loudly when it cannot.
# Nothing is downloaded outside the package manager: the tests hand Selenium these two paths.
set -u
pg_initdb() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_initdb)" ] && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing postgresql from Debian's packages for the analytics store tests..."
    # policy-rc.d exit 101: install the binaries without starting the packaged cluster as a service
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1; fi
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/tmp/tya-apt-pg.log 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >>/tmp/tya-apt-pg.log 2>&1; }) \
      || echo "!!! Could not install postgresql (see /tmp/tya-apt-pg.log)."
    [ "$created_policy" = "1" ] && rm -f /usr/sbin/policy-rc.d
  fi
fi
if [ -z "$(pg_initdb)" ] && ! command -v initdb >/dev/null 2>&1; then
  echo "!!! ============================================================================="
  echo "!!! PostgreSQL (initdb/pg_ctl) is missing: the POSTGRESQL STORE TESTS WILL FAIL."
  echo "!!! Install it (Debian: apt-get install postgresql) or set KB_TEST_DATABASE_URL."
  echo "!!! ============================================================================="
else
  pg_bin=$(pg_initdb); [ -n "$pg_bin" ] || pg_bin=$(command -v initdb)
  echo "PostgreSQL for the store tests: $(dirname "$pg_bin")"
fi
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
