# dockgate developer tasks. `make test` needs root: the integration tests start a private dockerd.
SHELL := /bin/bash
CARGO ?= cargo
# System packages the integration tests need, as `command-or-path:debian-package`.
DEPS := dockerd:docker.io docker:docker.io /bin/busybox:busybox-static openssl:openssl \
        script:bsdutils tar:tar sha256sum:coreutils \
        promtool:prometheus systemd-analyze:systemd file:file chroot:coreutils ldd:libc-bin \
        x86_64-w64-mingw32-objdump:binutils-mingw-w64-x86-64

.PHONY: test ensure-deps build demo demo-stop fmt clippy static

# Linux unit and integration tests, then the Windows ones under wine. (The `windows` test
# target only runs through test-windows: on its own its tests are ignored, needing wine.)
# The release tests (tests/integration/release.rs) check the static binary and the exe, so
# both are built first.
test: ensure-deps static windows
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
# `BENCH_ONLY=handshake make bench`: one scenario (about two minutes), reported in /tmp/dgb only.
.PHONY: bench
bench:
	bash bench/run.sh

# --- Static Linux binary: musl, std built from source (issue #15) ------------------------------
# target/x86_64-unknown-linux-musl/release/dockgate, no interpreter, no shared libraries: it runs
# on any x86_64 Linux and in a FROM scratch image. musl rather than static glibc because glibc's
# resolver loads NSS modules at run time (absent in an empty image), while musl reads
# /etc/hosts and /etc/resolv.conf itself; `localhost` is resolved by dockgate (src/net.rs).
# The rustup toolchain has no musl target here, so Debian's rustc builds std (-Zbuild-std).
# Rust's std links a static libunwind for musl; Debian's LLVM one (libunwind-14-dev) needs
# glibc's __fprintf_chk, which packaging/musl/fprintf_chk.c provides (an object file on the
# link line is always linked in full, so no --whole-archive dance).
MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(MUSL_TARGET)/release/dockgate
MUSL_SHIM := target/musl-shim/fprintf_chk.o
MUSL_DEPS := /usr/bin/rustc:rustc-web /usr/bin/cargo:cargo-web \
             /usr/lib/rustlib/src/rust/library/std:rust-web-src \
             /usr/bin/musl-gcc:musl-tools /usr/lib/llvm-14/lib/libunwind.a:libunwind-14-dev
MUSL_CARGO := env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_PROFILE_RELEASE_STRIP=symbols \
	CC_x86_64_unknown_linux_musl=musl-gcc \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=no \
	  -C target-feature=+crt-static -C relocation-model=static \
	  -L /usr/lib/llvm-14/lib -C link-arg=$(CURDIR)/$(MUSL_SHIM)" \
	/usr/bin/cargo

.PHONY: ensure-musl-deps
ensure-musl-deps:
	@missing=""; \
	for dep in $(MUSL_DEPS); do \
	  what=$${dep%%:*}; pkg=$${dep#*:}; \
	  [ -e "$$what" ] && continue; \
	  case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make static: missing$$missing (run as root to install)" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

$(MUSL_SHIM): packaging/musl/fprintf_chk.c
	@mkdir -p $(dir $@)
	musl-gcc -O2 -c -o $@ $<

static: ensure-musl-deps $(MUSL_SHIM)
	$(MUSL_CARGO) build --release -Zbuild-std --target $(MUSL_TARGET) --bin dockgate
	@file $(STATIC_BIN) | grep -q 'statically linked' || { file $(STATIC_BIN); echo "not static" >&2; exit 1; }
	@ls -l $(STATIC_BIN)

# --- Linux image: FROM scratch with the static binary ------------------------------------------
# Built by the dockerd that DOCKER_HOST names (no registry needed for scratch). The legacy builder
# is enough for a COPY; it needs no BuildKit/buildx plugin.
IMAGE ?= dockgate:latest
.PHONY: image
image: static
	DOCKER_BUILDKIT=0 docker build -q -t $(IMAGE) -f Dockerfile .
	@docker image inspect -f '{{.Size}}' $(IMAGE) | \
	  awk '{ printf "$(IMAGE): %.1f MB\n", $$1 / 1e6; if ($$1 >= 10e6) { print "larger than 10 MB" > "/dev/stderr"; exit 1 } }'

# --- Release: dist/ with the static Linux binary, the Windows exe, the systemd unit, SHA256SUMS ---
.PHONY: dist
dist: static windows
	rm -rf dist
	mkdir -p dist
	cp $(STATIC_BIN) dist/dockgate-linux-x86_64
	cp $(WIN_OUT)/dockgate.exe dist/dockgate-windows-x86_64.exe
	cp packaging/dockgate.service dist/dockgate.service
	cd dist && sha256sum dockgate-linux-x86_64 dockgate-windows-x86_64.exe dockgate.service > SHA256SUMS
	@cat dist/SHA256SUMS
