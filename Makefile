# Set-up and entry points. Every target installs what it needs, so `make demo`
# and `make test` work on a fresh machine and are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STATE_DIR ?= $(CURDIR)/state
# Debian packages the suite needs (checked with dpkg, installed only when missing).
DEB_PACKAGES := iproute2 nftables iptables gcc golang-go golang-github-hashicorp-memberlist-dev
# The Go memberlist node of the interop tests (../shared next to the repo, as in CI);
# the tests build it themselves, `make peer` does it ahead of time.
PEER_SRC := ../shared/peers/memberlist-peer
PEER_BIN := .cache/memberlist-peer/memberlist-peer
RUST_SOURCES := $(shell find rust/src -name '*.rs') rust/Cargo.toml Cargo.toml pyproject.toml

.PHONY: demo test test-rust test-python lint bench deps debs peer clean

demo: $(VENV)/.built
	$(PY) -m pyln.demo --state-dir $(STATE_DIR)

test: $(VENV)/.built test-rust test-python

test-rust:
	cargo test --workspace --release

test-python: $(VENV)/.built
	$(PY) -m pytest -q

lint: $(VENV)/.built
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --features python -- -D warnings

bench: $(VENV)/.built
	$(PY) -m pytest benches -q -p no:cacheprovider --benchmark-only --benchmark-columns=median,min,max,rounds
	cargo bench --workspace --bench bitseq --bench networkdb_wire

debs:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.deps: requirements-dev.txt | debs
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -r requirements-dev.txt
	touch $@

$(VENV)/.built: $(VENV)/.deps $(RUST_SOURCES)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
	  $(VENV)/bin/maturin develop --release -q
	touch $@

peer: $(PEER_BIN)

# Rebuilt only when main.go is newer than the binary (the tests apply the same rule).
$(PEER_BIN): $(PEER_SRC)/main.go | debs
	$(PEER_SRC)/build.sh $(dir $@)

clean:
	rm -rf $(VENV) target .cache
