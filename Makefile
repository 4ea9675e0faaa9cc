# Two commands on a fresh machine:  make demo   and   make test   (both set up .venv first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup browser slurm sample demo test docs style format lint bench gpu-check clean-demo arch-tables

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned requirements into $(VENV) (log: $(VENV)/pip.log)"
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt > $(VENV)/pip.log 2>&1 \
		|| { tail -30 $(VENV)/pip.log; exit 1; }
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps -e . >> $(VENV)/pip.log 2>&1 \
		|| { tail -30 $(VENV)/pip.log; exit 1; }
	@rm -f $(VENV)/.installed-*
	@touch $@

# The atlas browser tests drive a headless Chrome or Chromium through its chromedriver. When none is
# found, root on Debian/Ubuntu gets Debian's chromium + chromium-driver through apt; anyone else is
# told what to install, and the run goes on (the browser tests skip; under CI=true they fail).
browser: $(STAMP)
	@$(BIN)/python tests/helpers/browser.py --check >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian chromium + chromium-driver for the atlas browser tests (log: /tmp/resstream-apt.log)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }; \
	  } > /tmp/resstream-apt.log 2>&1 || tail -5 /tmp/resstream-apt.log; \
	fi; \
	$(BIN)/python tests/helpers/browser.py --check || true

# The real-cluster test (tests/workflow/test_real_cluster.py) starts its own single-node SLURM
# cluster from Debian's slurm-wlm and munge. When they are missing, root on Debian/Ubuntu gets them
# through apt; anyone else is told what to install, and the run goes on (the test skips; under
# CI=true it fails).
slurm: $(STAMP)
	@$(BIN)/python tests/helpers/slurm_cluster.py --check >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian slurm-wlm + munge for the real-cluster test (log: /tmp/resstream-apt.log)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge; }; \
	  } > /tmp/resstream-apt.log 2>&1 || tail -5 /tmp/resstream-apt.log; \
	fi; \
	$(BIN)/python tests/helpers/slurm_cluster.py --check || true

# The sample: from $$RESSTREAM_SAMPLE, ../shared/data/imagenet-sample or the upstream download,
# verified against its sha256 manifest (resstream/data/sample.py); an existing copy is only verified.
SAMPLE := data/imagenet-sample

sample: $(STAMP)
	@$(BIN)/resstream fetch-sample --dest $(SAMPLE)

demo: sample
	$(BIN)/snakemake --cores $(CORES) --configfile demo.yaml
	$(BIN)/snakemake --configfile demo.yaml --report results/demo/report.html
	@echo "open results/demo/atlas/index.html (the unit atlas) and results/demo/report.html in a browser"

# The tests spread over TEST_WORKERS processes (pytest-xdist; default: the cores, at most 4); the slow
# workflow runs share one finished small run, made once for all of them (tests/helpers/once.py).
# TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
test: $(STAMP) browser slurm
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=25

# The documentation site (docs/, mkdocs.yml) into site/; --strict makes a broken link or a missing page an
# error. docs/configuration.md and docs/troubleshooting.md are generated from the schema and the code
# while it builds (docs/hooks.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The code's style, checked without the sample or a run: ruff's formatter and linter (pyproject.toml) and
# snakefmt for the rules; .ci/run runs it before the tests. `make format` rewrites what it reports.
style: $(STAMP)
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/snakefmt --check Snakefile rules/

format: $(STAMP)
	$(BIN)/ruff format --quiet .
	$(BIN)/ruff check --quiet --fix .
	$(BIN)/snakefmt Snakefile rules/

lint: sample
	$(BIN)/snakemake --lint --configfile demo.yaml
	$(BIN)/snakefmt --check Snakefile rules/

# GPU readiness (bench/gpu_check.py): agreement with the CPU, FV throughput against lucent at batch 1,
# speed options, repeatability, the dataset pass, GPU pinning; a table and results/gpu_check.json.
# On a machine without a GPU:  make gpu-check GPU_CHECK_ARGS="--device cpu --tiny"  (a dry run).
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py --out results/gpu_check.json $(GPU_CHECK_ARGS)

# Every supported architecture's block table, map sizes and weights sets, recorded from the networks
# under the installed torchvision (resstream/model/arch_tables.json: planning reads it, no torch); after
# a torchvision upgrade, tests/model/test_structure.py says to run this.
arch-tables: $(STAMP)
	$(BIN)/python -m resstream.model.structure
	$(BIN)/python -m resstream.model.timm_models

clean-demo:
	rm -rf results/demo
