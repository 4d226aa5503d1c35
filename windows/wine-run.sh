#!/bin/sh
# Runs a Windows program under Debian's wine64 in dockgate's own wine prefix (set up by
# `make wine-prefix`). Used as cargo's runner for x86_64-pc-windows-gnu and by the named-pipe
# tests (tests/windows). WINEPREFIX may be overridden; the default matches the Makefile.
: "${WINEPREFIX:=$(cd "$(dirname "$0")/.." && pwd)/target/wine-prefix}"
WINEDEBUG="${WINEDEBUG:--all}"
export WINEPREFIX WINEDEBUG
exec /usr/lib/wine/wine64 "$@"
