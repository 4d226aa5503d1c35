# dockgate developer tasks. `make test` needs root: the integration tests start a private dockerd.
SHELL := /bin/bash
CARGO ?= cargo
# System packages the integration tests need, as `command-or-path:debian-package`.
DEPS := dockerd:docker.io docker:docker.io /bin/busybox:busybox-static openssl:openssl \
        script:bsdutils tar:tar sha256sum:coreutils

.PHONY: test ensure-deps build demo demo-stop fmt clippy

test: ensure-deps
	$(CARGO) test --all-targets

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
