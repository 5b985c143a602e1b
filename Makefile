# Two commands a newcomer needs (README, Quick start):
#   make demo   set up .venv on first use, then matte the bundled sample clip into mattes/
#   make test   set up .venv on first use, then lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_WEIGHTS := $(wildcard ../shared/weights)

.PHONY: demo test lint format bench gui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,train]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vidmatte-cli assets/sample.mp4 --out mattes/ --overwrite \
		$(if $(SHARED_WEIGHTS),--teacher-dir $(SHARED_WEIGHTS))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

gui: $(STAMP)
	$(BIN)/vidmatte assets/sample.mp4

clean:
	rm -rf $(VENV) mattes .pytest_cache .ruff_cache
