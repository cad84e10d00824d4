# taskplane — `make demo` runs the main job, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Editable: new files and packages of the checkout are picked up without reinstalling (a path
# .pth, see package-dir in pyproject.toml). The venv is reinstalled when pyproject.toml or this
# command changes (a venv made with setuptools' import finder gets the path .pth).
INSTALL := pip install -q -e '.[test,dev]'
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo '$(INSTALL)') | sha256sum | cut -c1-12)
SYSTEM_PACKAGES := runc containerd busybox-static
PROTOS := $(wildcard runtime_v2/api/*.proto runtime_v2/ttrpc/*.proto)

.PHONY: test demo lint protos system-packages venv bench clean docs

$(PY):
	python3 -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m $(INSTALL)
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Installs runc, the runc shim and busybox when running as root on Debian and one is missing.
system-packages:
	@bash .ci/system-packages

test: venv system-packages
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv system-packages
	$(PY) -m taskplane demo

lint: venv
	$(PY) -m ruff check registry plugins runtime_v2 taskplane tests bench examples
	$(PY) -m ruff format --check registry plugins runtime_v2 taskplane tests bench examples
	$(PY) -m mypy

# Regenerates the committed *_pb2.py / *_pb2.pyi files from the .proto files in runtime_v2/api and runtime_v2/ttrpc.
protos: venv
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. $(PROTOS)

bench: venv system-packages
	$(PY) bench/registry_boot.py
	$(PY) bench/ttrpc.py
	$(PY) bench/lifecycle.py
	$(PY) bench/events.py
	$(PY) bench/cli.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Regenerates the README blocks that copy example files and the config reference.
docs: venv
	$(PY) -m taskplane.gen_docs
