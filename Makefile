# Two commands do all set-up on a fresh machine:
#   make demo   - build the environment, then run the end-to-end demo
#   make test   - build the environment, then run the test suite
# Both create or refresh a project-local .venv from the pinned requirements.txt and
# (re)build this package into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The ROS graph of tests and the demo stays on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: all venv install test demo bench lock clean

all: test

# Refreshed whenever the pinned set changes.
$(VENV)/.requirements: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==25.3"
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.requirements

# Rebuilt on every call: CMake's build folder makes an unchanged tree cheap (a few seconds).
install: venv
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .

test: install
	$(PY) -m pytest -ra $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/fer-ros demo $(DEMO_ARGS)

bench: install
	$(VENV)/bin/fer-ros bench --device cpu --json benchmarks/results/bench_cpu.json

# Re-freeze requirements.txt after editing requirements.in.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet "pip==25.3" && .venv-lock/bin/pip install --quiet -r requirements.in
	$(PYTHON) tools/freeze_requirements.py .venv-lock/bin/python > requirements.txt
	rm -rf .venv-lock

clean:
	rm -rf build $(VENV)
