# dockgate developer tasks. `make test` needs root: the integration tests start a private dockerd.
SHELL := /bin/bash
CARGO ?= cargo
# System packages the integration tests need, as `command-or-path:debian-package`.
DEPS := dockerd:docker.io docker:docker.io /bin/busybox:busybox-static openssl:openssl \
        script:bsdutils tar:tar sha256sum:coreutils

.PHONY: test ensure-deps build demo demo-stop fmt clippy

# Linux unit and integration tests, then the Windows ones under wine. (The `windows` test
# target only runs through test-windows: on its own its tests are ignored, needing wine.)
test: ensure-deps
	$(CARGO) test --bins --test integration
	$(MAKE) test-windows

ensure-deps:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make test: the integration tests start dockerd and must run as root" >&2; exit 1; \
	fi
	@missing=""; \
	for dep in $(DEPS); do \
	  what=$${dep%%:*}; pkg=$${dep#*:}; \
	  if [ "$${what:0:1}" = / ]; then [ -x "$$what" ] && continue; \
	  else command -v "$$what" >/dev/null 2>&1 && continue; fi; \
	  case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

build:
	$(CARGO) build --release

demo: build
	bash tests/demo/demo.sh

demo-stop:
	bash tests/demo/demo.sh stop

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# --- Windows: cross build with Debian's Rust (-Zbuild-std, mingw) and tests under wine ---------
# The rustup toolchain has no Windows target here; Debian's rustc-web ships the std source, so
# std is built for x86_64-pc-windows-gnu on the fly. Always /usr/bin/cargo + /usr/bin/rustc.
WIN_TARGET := x86_64-pc-windows-gnu
WIN_OUT := target/$(WIN_TARGET)/release
WINEPREFIX ?= $(CURDIR)/target/wine-prefix
WIN_DEPS := /usr/bin/rustc:rustc-web /usr/bin/cargo:cargo-web \
            /usr/lib/rustlib/src/rust/library/std:rust-web-src \
            /usr/bin/x86_64-w64-mingw32-gcc:mingw-w64 /usr/lib/wine/wine64:wine64
WIN_CARGO := env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
	CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc \
	CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
	CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$(CURDIR)/windows/wine-run.sh \
	WINEPREFIX=$(WINEPREFIX) /usr/bin/cargo
WIN_FLAGS := --release -Zbuild-std --target $(WIN_TARGET)

.PHONY: windows test-windows ensure-windows-deps wine-prefix

ensure-windows-deps:
	@missing=""; \
	for dep in $(WIN_DEPS); do \
	  what=$${dep%%:*}; pkg=$${dep#*:}; \
	  [ -e "$$what" ] && continue; \
	  case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make windows: missing$$missing (run as root to install)" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# target/x86_64-pc-windows-gnu/release/dockgate.exe
windows: ensure-windows-deps
	$(WIN_CARGO) build $(WIN_FLAGS) --bin dockgate

# A wine prefix with the ProcessPrng shim (see windows/prng-shim).
wine-prefix: ensure-windows-deps
	windows/wine-prefix.sh $(WINEPREFIX)

# Unit tests as Windows binaries under wine, then the named-pipe end-to-end tests: dockgate.exe and
# a fake Docker engine (windows/fake-engine) under wine, driven over TLS from Linux.
test-windows: windows wine-prefix
	$(WIN_CARGO) test $(WIN_FLAGS) --bins
	$(WIN_CARGO) build $(WIN_FLAGS) --manifest-path windows/fake-engine/Cargo.toml --target-dir $(CURDIR)/target
	DOCKGATE_EXE=$(CURDIR)/$(WIN_OUT)/dockgate.exe FAKE_ENGINE_EXE=$(CURDIR)/$(WIN_OUT)/fake-engine.exe \
	  WINE_RUN=$(CURDIR)/windows/wine-run.sh WINEPREFIX=$(WINEPREFIX) \
	  $(CARGO) test --test windows -- --ignored --test-threads=1

# Benchmarks side by side with dockerd's TLS port, nginx, HAProxy and stunnel (issue #4); not part
# of `make test`. Root; installs what it lacks; writes docs/BENCHMARKS.md and bench/results.json.
.PHONY: bench
bench:
	bash bench/run.sh
