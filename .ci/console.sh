#!/usr/bin/env bash
# The web console's browser test (tests/it/console/) drives Debian's chromium through
# chromedriver; install both when missing. .ci/run then sets PRIVGATE_REQUIRE_BROWSER=1,
# so the test fails, not skips, if they are still absent.
set -euo pipefail
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
/usr/bin/chromium --version
