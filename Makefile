# Set-up and the two entry points a new user needs: `make demo` and `make test`.
# GPU users: make test TORCH_SPEC="torch" (or a CUDA wheel of their choice).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# Test processes (pytest-xdist; whole files per worker). OMP_WAIT_POLICY=passive keeps the workers'
# OpenMP threads from spinning on each other's cores. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2

.PHONY: install demo test clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

# The sample (2 s of 640x360) to 2x with the default profile, then a quality self-check on 10 of the
# sample's own frames re-created from their neighbours (the same engine and profile choice), one line.
demo: install
	mkdir -p demo
	$(BIN)/dainctl sample demo/sample.mp4 --overwrite
	$(BIN)/dainctl interpolate demo/sample.mp4 demo/sample.2x.mp4 --overwrite
	@$(BIN)/dainctl benchmark quality demo/sample.mp4 --max-items 10 --summary
	@echo "demo: input demo/sample.mp4 -> result $(CURDIR)/demo/sample.2x.mp4"

test: install
	OMP_WAIT_POLICY=passive $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) demo build src/*.egg-info
