# Shared by tools/run, tools/test and tools/bench/run. Source it; do not execute it.
# Installs missing Debian packages and builds the tree.

TOLLGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOLLGATE_BUILD_DIR="${TOLLGATE_BUILD_DIR:-$TOLLGATE_ROOT/build}"
TOLLGATE_PG_BIN="${TOLLGATE_PG_BIN:-/usr/lib/postgresql/15/bin}"
export TOLLGATE_PG_BIN

# Every package the build, the tests and the local run need (all from Debian 12).
TOLLGATE_PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libpqxx-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  libspdlog-dev libyaml-cpp-dev libssl-dev libre2-dev
  postgresql curl ca-certificates
)

log() { printf '\033[1m[tollgate]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[tollgate] error:\033[0m %s\n' "$*" >&2; exit 1; }

install_deps() {
  local missing=()
  for p in "${TOLLGATE_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  # The postgresql package starts a cluster on 5432; Tollgate runs its own and does not need it.
}

build_tree() {
  local build_type="${1:-Release}"
  log "configuring ($build_type) in $TOLLGATE_BUILD_DIR"
  cmake -S "$TOLLGATE_ROOT" -B "$TOLLGATE_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" \
    -DTOLLGATE_BUILD_TESTS=ON >/dev/null || die "cmake configure failed"
  log "building with $(nproc) jobs"
  cmake --build "$TOLLGATE_BUILD_DIR" -j "$(nproc)" || die "build failed"
}

# Path of a built binary by target name.
bin_path() {
  local found
  found=$(find "$TOLLGATE_BUILD_DIR" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1)
  [ -n "$found" ] || die "binary $1 not found under $TOLLGATE_BUILD_DIR (build first)"
  echo "$found"
}

# Runs a PostgreSQL command as the directory's owner (initdb refuses root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
