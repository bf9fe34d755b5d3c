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

.PHONY: all venv install test unit lint format demo bench lock clean venv-jazzy install-jazzy test-jazzy lock-jazzy

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

# Lint and format check of the whole tree (ruff, configured in pyproject.toml); `make format` fixes.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The unit tests (test/unit: no DDS) straight from the source tree: the package is built once, for
# its generated messages; later edits need no reinstall (test/conftest.py puts the source first).
unit: venv
	$(PY) -c "import fer_ros.msg" 2>/dev/null || $(MAKE) install
	$(PY) -m pytest -ra test/unit $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/fer-ros demo $(DEMO_ARGS)

bench: install
	$(VENV)/bin/fer-ros bench --device cpu --json benchmarks/results/bench_cpu.json

# Re-freeze requirements.txt after editing requirements.in.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet "pip==25.3" && .venv-lock/bin/pip install --quiet -r requirements.in
	$(PYTHON) maintainer/freeze_requirements.py .venv-lock/bin/python > requirements.txt
	rm -rf .venv-lock

# A second environment: the same package built and tested against ROS 2 Jazzy (rclpy 7.1.6)
# from requirements-jazzy.txt. Its own build folder: CMake caches where it found each ROS package.
VENV_JAZZY := .venv-jazzy
PY_JAZZY := $(VENV_JAZZY)/bin/python
JAZZY_TESTS ?= test/ros/test_messages.py test/ros/test_node.py test/ros/test_bag_replay.py \
	test/unit/bags/test_bag_eval.py test/ros/test_large_frames.py

$(VENV_JAZZY)/.requirements: requirements-jazzy.txt
	test -x $(PY_JAZZY) || $(PYTHON) -m venv $(VENV_JAZZY)
	$(PY_JAZZY) -m pip install --quiet --upgrade "pip==25.3"
	$(PY_JAZZY) -m pip install --quiet -r requirements-jazzy.txt
	touch $@

venv-jazzy: $(VENV_JAZZY)/.requirements

install-jazzy: venv-jazzy
	$(PY_JAZZY) -m pip install --quiet --no-deps --no-build-isolation --force-reinstall \
		--config-settings=build-dir=build/jazzy/{wheel_tag} .

test-jazzy: install-jazzy
	$(PY_JAZZY) -m pytest -ra $(JAZZY_TESTS) $(PYTEST_ARGS)

# Re-freeze requirements-jazzy.txt after editing requirements-jazzy.in.
lock-jazzy:
	rm -rf .venv-jazzy-lock && $(PYTHON) -m venv .venv-jazzy-lock
	.venv-jazzy-lock/bin/pip install --quiet "pip==25.3" && .venv-jazzy-lock/bin/pip install --quiet -r requirements-jazzy.in
	$(PYTHON) maintainer/freeze_requirements.py .venv-jazzy-lock/bin/python requirements-jazzy.in lock-jazzy > requirements-jazzy.txt
	rm -rf .venv-jazzy-lock

clean:
	rm -rf build $(VENV) $(VENV_JAZZY)
