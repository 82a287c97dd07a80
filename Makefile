# The VAE book. On a fresh machine:  make book   (build the book)   make test   (run every test)
# Both create .venv and install the pinned environment (constraints.txt) first when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install book test unit nbval notebooks notebooks-check test-other-cpu checkpoints evaluate bench clean

# uv (pinned like the rest) installs the environment: it downloads and unpacks wheels in parallel,
# about 3x faster than pip on 2 cores (35 s against 115 s, bench/RESULTS.md); pip if uv cannot.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt uv
	$(PY) -m uv pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt -e . \
		|| $(PY) -m pip install -qq -c constraints.txt -e .  # -qq: errors only
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(STAMP)  ## create .venv with the pinned environment (CI and the Pages workflow use it)

book: $(STAMP)  ## execute every chapter and build the site into _book/ (Quarto, else the fallback)
	$(PY) tools/book.py build

test: $(STAMP) notebooks-check unit nbval  ## all tests: unit suite, every notebook under nbval, the exercises
	$(PY) -m vaebook exercises --check

unit: $(STAMP)
	$(PY) -m pytest -q tests

nbval: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval-sanitize.cfg notebooks

# The tests that compare against recorded numbers (the faces checksums, re-measured metrics),
# again with numpy, ATen and oneDNN held to their baseline instruction sets and an empty faces
# cache: a machine of one kind then sees what a CPU of another kind would compute.
BASELINE_ISA := NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" \
	ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41
test-other-cpu: $(STAMP)
	cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	VAEBOOK_CACHE=$$cache $(BASELINE_ISA) $(PY) -m pytest -q -p no:cacheprovider \
		tests/test_faces_identity.py tests/test_evaluate.py

notebooks: $(STAMP)  ## regenerate notebooks/ from chapters/
	$(PY) tools/book.py notebooks

notebooks-check: $(STAMP)  ## fail when notebooks/ has drifted from chapters/
	$(PY) tools/book.py check

checkpoints: $(STAMP)  ## retrain every preset into checkpoints/ (run again after an interruption: it resumes)
	for name in $$($(PY) -m vaebook list --names); do \
		$(PY) -m vaebook train $$name --save || exit 1; done
	$(PY) -m vaebook evaluate --update

evaluate: $(STAMP)  ## the results table of every cached model
	$(PY) -m vaebook evaluate

bench: $(STAMP)  ## throughput and timing figures
	$(PY) -m vaebook.cli.bench --chapters

clean:
	rm -rf _book .book-build _freeze .quarto runs .pytest_cache
