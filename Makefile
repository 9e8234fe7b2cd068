# napshare — every target works on a fresh machine with python3, make, git and npm.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TOOLS := .tools
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
STAMP := $(VENV)/.installed
PROTO_FILES := $(shell find protos -name '*.proto' | sort)

.PHONY: help install proto check-proto locale check-locale lint test demo bench bench-smoke clean

help:
	@echo "make demo        the whole napshare flow: tracker, two peers, a >1 GiB video download"
	@echo "make test        install, check generated code, lint, run the tests"
	@echo "make install     create .venv with napshare (editable) and its dev tools"
	@echo "make proto       regenerate generated/ from protos/"
	@echo "make check-proto fail if generated/ is not what protos/ generates"
	@echo "make locale      recompile the Portuguese console lines after editing the .po"
	@echo "make lint        ruff, mypy --strict, buf lint"
	@echo "make bench       transfer speed, memory and tracker scale; writes BENCHMARKS.md"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

# Generate Python code for protos/ into $(1).
define gen_proto
	rm -rf $(1) && mkdir -p $(1)/napshare/v1
	PATH="$(abspath $(BIN)):$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=$(1) --pyi_out=$(1) --grpc_python_out=$(1) --mypy_grpc_out=$(1) \
	  $(patsubst protos/%,%,$(PROTO_FILES))
	touch $(1)/napshare/__init__.py $(1)/napshare/v1/__init__.py $(1)/napshare/py.typed
endef

proto: $(STAMP)
	$(call gen_proto,generated)

check-proto: $(STAMP)
	$(call gen_proto,$(TOOLS)/generated-check)
	@diff -r generated $(TOOLS)/generated-check > /dev/null || { \
	  diff -r generated $(TOOLS)/generated-check | head -40; \
	  echo "generated/ is out of date with protos/: run 'make proto' and commit the result"; exit 1; }
	@echo "generated/ matches protos/"

LOCALE_PO := common/locale/pt_BR/LC_MESSAGES/napshare.po

locale: $(STAMP)
	$(BIN)/pybabel compile -l pt_BR -i $(LOCALE_PO) -o $(LOCALE_PO:.po=.mo)

check-locale: $(STAMP)
	@mkdir -p $(TOOLS)
	@$(BIN)/pybabel compile -l pt_BR -i $(LOCALE_PO) -o $(TOOLS)/napshare.mo 2>/dev/null
	@cmp -s $(TOOLS)/napshare.mo $(LOCALE_PO:.po=.mo) || { \
	  echo "$(LOCALE_PO:.po=.mo) is out of date: run 'make locale' and commit the result"; exit 1; }

lint: $(STAMP) $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy tracker peer common
	$(BUF) lint

test: install check-proto check-locale lint
	$(BIN)/pytest

demo: $(STAMP)
	$(PY) tests/demo.py

bench: $(STAMP)
	$(PY) -m tests.bench.run

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
