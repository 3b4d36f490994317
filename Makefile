# tierscale developer entry points. The README documents exactly two of them:
#   make preview STACK=<name>   set up, render and validate one stack offline
#   make test                   set up and run the whole test suite
# Both install everything they need on a fresh Debian 12 machine (apt packages, venv, pip).

SHELL := /bin/bash
VENV  ?= venv
STACK ?= small-dev
PYTHON ?= python3

# Debian packages the validators and tests run for real: nginx -t, promtool, openssl (TLS
# check), the bare-metal test hosts (debootstrap, systemd-nspawn, iproute2, ssh) and the
# Compose project run (podman with runc and netavark/aardvark-dns for service-name DNS;
# netavark runs iptables, which Debian's podman only suggests). python3-venv for the venvs.
# Installed with --no-install-recommends, so this list names everything the suite runs; it is
# checked on a brand-new Debian 12 rootfs by .ci/fresh-machine-check (README, "Tests").
APT_PACKAGES := python3 python3-venv nginx-light libnginx-mod-http-js prometheus openssl debootstrap systemd-container iproute2 \
	openssh-client podman runc netavark aardvark-dns iptables redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps preview test render validate clean

setup: system-deps $(VENV)/.installed .venv-checkov/.installed .venv-litellm/.installed

# A package counts as present only in dpkg's `installed` state: `config-files` (removed),
# `unpacked`, `half-configured`, `half-installed` and `triggers-*` are all missing, and
# apt-get install (after dpkg --configure -a for interrupted runs) finishes or reinstalls it.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) dpkg --configure -a; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Re-run pip only when the dependency pins change.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $@

# checkov lives in its own virtualenv: its dependencies conflict with pulumi's `packaging` pin.
.venv-checkov/.installed: requirements-checkov.lock
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check -r requirements-checkov.lock
	touch $@

# The LiteLLM proxy (same version as the pinned gateway image), for the live gateway test.
.venv-litellm/.installed: requirements-litellm.lock
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/pip install -q --disable-pip-version-check -r requirements-litellm.lock
	touch $@

preview: setup
	$(VENV)/bin/tierscale render --stack $(STACK)
	$(VENV)/bin/tierscale validate --stack $(STACK)

test: setup
	$(VENV)/bin/pytest -q

clean:
	rm -rf build .pytest_cache .hypothesis
