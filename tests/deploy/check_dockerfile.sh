#!/usr/bin/env bash
# Static checks of deploy/docker/Dockerfile and .dockerignore (no Docker engine needed).
#
#   tests/deploy/check_dockerfile.sh [build dir with compiled binaries, default: build/]
#
# Fails (exit 1, one "FAIL" line per problem) unless:
#   - the stages build, runtime, gateway, router, ledger, mock-provider, tollgatectl exist and
#     every base image is Debian 12 (bookworm);
#   - the build stage installs every package of tools/lib/common.sh's TOLLGATE_PACKAGES except the
#     test/local-run ones (libgtest-dev libgmock-dev postgresql curl), and configures with tests off;
#   - every apt package named exists in Debian's index (apt-cache show);
#   - every image stage runs as a numeric non-root USER and its ENTRYPOINT is a binary it copies
#     from the build stage; each binary is a CMake target (tollgate_cc_binary NAME);
#   - the build stage builds exactly the binaries the image stages use;
#   - when compiled binaries exist under the build dir: every library they link directly (ELF
#     NEEDED) belongs to a package of the runtime stage (or libc6/libstdc++6/libgcc-s1);
#   - nothing is downloaded outside apt (no ADD <url>, curl, wget);
#   - .dockerignore excludes .git, build directories and node_modules.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dockerfile="$root/deploy/docker/Dockerfile"
build_dir="${1:-$root/build}"
failures=0
fail() { echo "FAIL dockerfile: $*"; failures=$((failures + 1)); }

[ -f "$dockerfile" ] || { echo "FAIL dockerfile: $dockerfile is missing"; exit 1; }
# Join continuation lines so each instruction is one line.
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$dockerfile" | grep -v '^\s*#')

# ---- stages and base images ----
declare -A stage_from=()
stage_order=()
while read -r from_line; do
  image=$(awk '{print $2}' <<<"$from_line")
  name=$(awk 'toupper($3) == "AS" {print $4}' <<<"$from_line")
  [ -n "$name" ] || { fail "FROM $image has no stage name"; continue; }
  stage_from[$name]=$image
  stage_order+=("$name")
done < <(grep -E '^FROM ' <<<"$joined")
release=$(grep -E '^ARG DEBIAN_RELEASE=' <<<"$joined" | head -n 1 | cut -d= -f2)
for s in build runtime gateway router ledger mock-provider tollgatectl; do
  [ -n "${stage_from[$s]:-}" ] || fail "stage $s is missing"
done
for s in "${stage_order[@]}"; do
  img=${stage_from[$s]//\$\{DEBIAN_RELEASE\}/$release}
  case "$img" in
    debian:bookworm|debian:bookworm-slim) ;;
    build|runtime) ;;  # earlier stages
    *) [ -n "${stage_from[$img]:-}" ] || fail "stage $s is based on $img, not Debian 12 (bookworm)" ;;
  esac
done

# ---- packages ----
stage_body() {  # prints the instructions of stage $1
  awk -v want="$1" 'toupper($1) == "FROM" { cur = (toupper($3) == "AS") ? $4 : "" ; next } cur == want' <<<"$joined"
}
apt_packages() {  # packages installed by apt-get install in stage $1
  stage_body "$1" | grep -E 'apt-get install' | sed -e 's/.*apt-get install//' -e 's/&&.*//' |
    tr ' ' '\n' | grep -Ev '^(-|$)' | sort -u
}
build_pkgs=$(apt_packages build)
runtime_pkgs=$(apt_packages runtime)
[ -n "$build_pkgs" ] || fail "the build stage installs no packages"
[ -n "$runtime_pkgs" ] || fail "the runtime stage installs no packages"
common_pkgs=$(sed -n '/^TOLLGATE_PACKAGES=(/,/^)/p' "$root/tools/lib/common.sh" | sed '1d;$d' | tr ' ' '\n' | grep -v '^$' | sort -u)
[ -n "$common_pkgs" ] || fail "cannot read TOLLGATE_PACKAGES from tools/lib/common.sh"
for p in $common_pkgs; do
  case "$p" in libgtest-dev|libgmock-dev|postgresql|curl) continue ;; esac
  grep -qx "$p" <<<"$build_pkgs" || fail "build stage lacks $p (in tools/lib/common.sh TOLLGATE_PACKAGES)"
done
if command -v apt-cache >/dev/null; then
  # One apt-cache call (each call re-reads the package index).
  known=$(apt-cache show --no-all-versions $build_pkgs $runtime_pkgs 2>/dev/null | sed -n 's/^Package: //p' | sort -u)
  for p in $build_pkgs $runtime_pkgs; do
    grep -qxF "$p" <<<"$known" || fail "package $p is not in Debian's index (apt-cache show $p)"
  done
else
  fail "apt-cache not available: cannot check package names"
fi
stage_body build | grep -q -- '-DTOLLGATE_BUILD_TESTS=OFF' || fail "the build stage should configure with -DTOLLGATE_BUILD_TESTS=OFF"

# ---- binaries, users, entrypoints ----
cmake_targets=$(grep -rhoE 'tollgate_cc_binary\(NAME [A-Za-z0-9_-]+' "$root"/services "$root"/tools --include=CMakeLists.txt | awk '{print $2}' | sort -u)
built=$(stage_body build | grep -oE -- '--target [^&]*' | head -n 1 | sed 's/--target//' | tr ' ' '\n' | grep -v '^$' | sort -u)
[ -n "$built" ] || fail "the build stage builds no --target"
for b in $built; do
  grep -qx "$b" <<<"$cmake_targets" || fail "build target $b is not a tollgate_cc_binary in CMake"
done
used=""
for s in gateway router ledger mock-provider tollgatectl; do
  body=$(stage_body "$s")
  user=$(grep -E '^USER ' <<<"$body" | tail -n 1 | awk '{print $2}')
  uid=${user%%:*}
  if [ -z "$user" ]; then
    user=$(stage_body runtime | grep -E '^USER ' | tail -n 1 | awk '{print $2}'); uid=${user%%:*}
  fi
  if ! [[ "$uid" =~ ^[0-9]+$ ]] || [ "$uid" -eq 0 ]; then fail "stage $s runs as '$user' (want a numeric non-root uid)"; fi
  entry=$(grep -E '^ENTRYPOINT ' <<<"$body" | tail -n 1 | sed -E 's/^ENTRYPOINT \["([^"]+)".*/\1/')
  [ -n "$entry" ] || { fail "stage $s has no ENTRYPOINT"; continue; }
  bin=$(basename "$entry")
  grep -qx "$bin" <<<"$cmake_targets" || fail "stage $s runs $bin, which is not a CMake binary target"
  grep -qx "$bin" <<<"$built" || fail "stage $s runs $bin, which the build stage does not build"
  grep -E '^COPY --from=build ' <<<"$body" | grep -q "/out/bin/$bin" || fail "stage $s does not copy $bin from the build stage"
  used="$used $bin"
  # Image stages must not install anything (the runtime stage does).
  grep -q 'apt-get' <<<"$body" && fail "stage $s runs apt-get (install in the runtime stage)"
done
for b in $built; do
  grep -qw -- "$b" <<<"$used" || fail "the build stage builds $b, which no image uses"
done
grep -qiE '^ADD +https?://|curl |wget ' <<<"$joined" && fail "the Dockerfile downloads outside apt"

# ---- runtime libraries of real binaries (when built) ----
checked=0
needed=""
for b in $built; do
  f=$(find "$build_dir" -maxdepth 4 -type f -name "$b" -perm -u+x 2>/dev/null | head -n 1)
  [ -n "$f" ] || continue
  checked=$((checked + 1))
  needed="$needed $(readelf -d "$f" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sed "s|^|$b:|")"
done
if [ "$checked" -gt 0 ]; then
  ldcache=$(ldconfig -p)
  declare -A lib_path=()
  for entry in $needed; do
    lib=${entry#*:}
    [ -n "${lib_path[$lib]:-}" ] && continue
    path=$(awk -v l="$lib" '$1 == l {print $NF; exit}' <<<"$ldcache")
    [ -n "$path" ] || { fail "${entry%%:*} needs $lib, which is not installed here"; continue; }
    lib_path[$lib]=$(readlink -f "$path")
  done
  # One dpkg -S for all libraries (it is slow per call).
  owners=$(dpkg -S "${lib_path[@]}" 2>/dev/null)
  for entry in $needed; do
    b=${entry%%:*}; lib=${entry#*:}
    real=${lib_path[$lib]:-}
    [ -n "$real" ] || continue
    pkg=$(awk -F': ' -v p="$real" '$2 == p {print $1; exit}' <<<"$owners" | cut -d: -f1)
    if [ -z "$pkg" ]; then  # /lib vs /usr/lib (merged /usr)
      pkg=$(dpkg -S "${real#/usr}" 2>/dev/null | head -n 1 | cut -d: -f1)
    fi
    case "$pkg" in libc6|libstdc++6|libgcc-s1) continue ;; esac
    grep -qx "$pkg" <<<"$runtime_pkgs" || fail "$b links $lib from package ${pkg:-?}, missing in the runtime stage"
  done
fi

# ---- .dockerignore ----
ignore="$root/.dockerignore"
if [ ! -f "$ignore" ]; then
  fail ".dockerignore is missing"
else
  for pat in .git build 'build-\*' '\*\*/node_modules'; do
    grep -qx "$pat" "$ignore" || fail ".dockerignore does not exclude $pat"
  done
fi

if [ "$failures" -ne 0 ]; then
  echo "check_dockerfile: $failures problem(s)"
  exit 1
fi
echo "check_dockerfile: OK (${#stage_order[@]} stages, $(wc -w <<<"$build_pkgs") build and $(wc -w <<<"$runtime_pkgs") runtime packages, runtime libraries checked on $checked built binaries)"
