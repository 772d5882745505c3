#!/usr/bin/env bash
# What the test suite needs besides Node 20 and `npm ci`, in one place. README's test command
# (`npm run test:all`) and .ci/run run this before `npm test`; test/preflight.test.ts runs it with --check.
#
#   bash test/setup.sh          install what is missing with apt-get (needs root); when not root, print the
#                               missing packages and the apt-get command, exit 1
#   bash test/setup.sh --check  install nothing: one line per tool ("ok TOOL PATH" or "missing TOOL (apt package
#                               PACKAGE)"), exit 1 if any is missing
#
# A tool is looked for where the tests look for it: $REDIS_SERVER, $REDIS_CLI, $CHROMIUM_PATH and $POSTGRES_BIN (a
# directory) override the Debian paths the helpers use; the others are found on PATH.
set -euo pipefail

# tool → Debian package (bookworm); what needs it
TOOLS=(
  redis-server:redis-server     # cluster limits: tests spawn real servers (test/helpers/redis.ts)
  redis-cli:redis-tools         # Redis Cluster set-up (test/helpers/redis-topology.ts)
  promtool:prometheus           # `promtool check metrics`, alert rules and their unit tests
  chromium:chromium             # the status page in a headless browser (test/observability/status-browser.test.ts)
  openssl:openssl               # keys and certificates for tests
  curl:curl                     # HTTPS and README commands as a user runs them (test/e2e/tls.test.ts, test/ops/readme.test.ts)
  systemd-analyze:systemd       # `systemd-analyze verify` of systemd/leaky.service
  postgres:postgresql           # the ledger shipped to Postgres: tests run initdb + postgres (test/helpers/postgres.ts)
)

# The path where the tests will find TOOL, or nothing.
where() {
  local p
  case "$1" in
    redis-server) p=${REDIS_SERVER:-/usr/bin/redis-server}; [ -x "$p" ] && echo "$p" ;;
    redis-cli) p=${REDIS_CLI:-/usr/bin/redis-cli}; [ -x "$p" ] && echo "$p" ;;
    # Debian's postgresql keeps its binaries off PATH, in a directory per major version
    # (15 on Debian 12, 17 on Debian 13): the newest one installed
    postgres)
      if [ -n "${POSTGRES_BIN:-}" ]; then p=$POSTGRES_BIN/postgres; [ -x "$p" ] && echo "$p"; return; fi
      p=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1)
      [ -n "$p" ] && [ -x "$p" ] && echo "$p" ;;
    chromium)
      for p in ${CHROMIUM_PATH:-} /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
      done
      return 1 ;;
    *) command -v "$1" ;;
  esac
}

# Fills the arrays missing_tools and missing_pkgs.
scan() {
  missing_tools=()
  missing_pkgs=()
  local entry tool pkg p
  for entry in "${TOOLS[@]}"; do
    tool=${entry%%:*}
    pkg=${entry#*:}
    if p=$(where "$tool"); then
      [ "${1:-}" = report ] && echo "ok $tool $p"
    else
      [ "${1:-}" = report ] && echo "missing $tool (apt package $pkg)"
      missing_tools+=("$tool")
      # one package may provide several tools: list it once
      case " ${missing_pkgs[*]:-} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
    fi
  done
  return 0
}

if [ "${1:-}" = --check ]; then
  scan report
  [ ${#missing_tools[@]} -eq 0 ]
  exit
fi

scan
[ ${#missing_tools[@]} -eq 0 ] && exit 0

install_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
echo "test/setup.sh: the tests need, and this machine lacks: ${missing_tools[*]} (Debian packages: ${missing_pkgs[*]})" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test/setup.sh: no apt-get here: install them with this system's package manager" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test/setup.sh: installing needs root; run:" >&2
  echo "  sudo sh -c '$install_cmd'" >&2
  echo "then run the tests again" >&2
  exit 1
fi

echo "test/setup.sh: $install_cmd" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null

scan
if [ ${#missing_tools[@]} -gt 0 ]; then
  echo "test/setup.sh: still missing after the install: ${missing_tools[*]}" >&2
  exit 1
fi
