#!/bin/sh
# Creates the wine prefix the Windows tests run in and installs the ProcessPrng shim
# (prng-shim/bcryptprimitives.dll; wine 8 lacks ProcessPrng, which Rust's std imports).
# Usage: wine-prefix.sh PREFIX
set -eu
prefix="$1"
here="$(cd "$(dirname "$0")" && pwd)"
shim="$prefix/bcryptprimitives.dll"
mkdir -p "$prefix"
x86_64-w64-mingw32-gcc -O2 -Wall -shared -o "$shim.tmp" \
    "$here/prng-shim/bcryptprimitives.c" "$here/prng-shim/bcryptprimitives.def" -ladvapi32
mv "$shim.tmp" "$shim"
if [ ! -f "$prefix/system.reg" ]; then
    echo "wine-prefix: initialising $prefix"
    WINEPREFIX="$prefix" WINEDEBUG=-all /usr/lib/wine/wine64 wineboot --init
    WINEPREFIX="$prefix" /usr/lib/wine/wineserver -w
fi
cp "$shim" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"
