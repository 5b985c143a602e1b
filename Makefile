# Two commands a newcomer needs (README, Quick start):
#   make demo   set up .venv on first use, then matte the bundled sample clip into mattes/
#   make test   set up .venv on first use, then lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_WEIGHTS := $(wildcard ../shared/weights)

.PHONY: demo test lint format bench profile gui clean weights

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,train,ray]'
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

# every benchmark -> bench_results/bench-*.json + .md, then the README's speed tables from it
# (BENCH_ARGS=--quick for a short run); `make profile` adds py-spy/torch.profiler summaries
bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)
	$(BIN)/python -m bench.readme

profile: $(STAMP)
	$(BIN)/python -m bench.profile_pipeline --out bench_results/profile.md \
		$(if $(SHARED_WEIGHTS),&& $(BIN)/python -m bench.profile_pipeline \
		--teacher-dir $(SHARED_WEIGHTS) --out bench_results/profile.md)

# Rebuild the shipped weights from ../shared with the recipe in training/configs/shipped*.toml
# (2-core CPU: about 2 hours). Results land in $(RUNS): the model folders in export/, the
# comparison table in compare.json; copy export/trimapnet and export/indexnet into
# assets/weights/ after reading it, and regenerate the cards (assets/README.md).
RUNS ?= runs/shipped
SHARED ?= ../shared
weights: $(STAMP)
	$(BIN)/vidmatte-train pseudo-label $(SHARED)/data/videos --out $(RUNS)/pseudo --per-frame --tta \
		--every 5 --window 2 --max-side 480 --preview --teacher-dir $(SHARED)/weights
	$(BIN)/vidmatte-train distil-alpha $(RUNS)/pseudo --out $(RUNS)/distil
	$(BIN)/vidmatte-train fit --config shipped --set data.dataset=$(RUNS)/pseudo \
		--out $(RUNS)/trimapnet-base
	$(BIN)/vidmatte-train fit --config shipped_temporal --precompute-flow \
		--set data.dataset=$(RUNS)/pseudo --set model.init=$(RUNS)/trimapnet-base/model \
		--out $(RUNS)/trimapnet
	$(BIN)/vidmatte-train fit --config shipped_temporal --set loss.temporal_weight=0.0 \
		--set data.dataset=$(RUNS)/pseudo --set model.init=$(RUNS)/trimapnet-base/model \
		--out $(RUNS)/trimapnet-no-temporal
	$(BIN)/vidmatte-train fit --config shipped_indexnet --out $(RUNS)/indexnet \
		--set 'data.matting=["$(SHARED)/data/matting/c1k_spring-289527_1920_15", "$(RUNS)/distil"]' \
		--set 'data.backgrounds=["$(RUNS)/pseudo/frames"]'
	$(BIN)/vidmatte-train export $(RUNS)/trimapnet $(RUNS)/export/trimapnet --fp16 --overwrite
	$(BIN)/vidmatte-train export $(RUNS)/trimapnet-no-temporal $(RUNS)/export/trimapnet-no-temporal \
		--fp16 --overwrite
	$(BIN)/vidmatte-train export $(RUNS)/indexnet $(RUNS)/export/indexnet --fp16 --overwrite \
		--architecture indexnet
	$(BIN)/vidmatte-train calibrate $(RUNS)/export/trimapnet $(RUNS)/pseudo
	$(BIN)/vidmatte-train calibrate $(RUNS)/export/trimapnet-no-temporal $(RUNS)/pseudo
	$(BIN)/python -m vidmatte.training.eval.baseline --max-frames 12 --overwrite \
		--student "student w/o temporal=$(RUNS)/export/trimapnet-no-temporal" \
		--student "student=$(RUNS)/export/trimapnet" --indexnet $(RUNS)/export/indexnet \
		--json $(RUNS)/compare.json --card-metrics $(RUNS)/cards
	$(BIN)/vidmatte-train publish $(RUNS)/export/trimapnet --dry-run --metrics $(RUNS)/cards/student.json \
		--data training/configs/shipped_sources_trimapnet.json \
		--recipe training/configs/shipped_recipe.md --card-out $(RUNS)/export/trimapnet/README.md

gui: $(STAMP)
	$(BIN)/vidmatte assets/sample.mp4

clean:
	rm -rf $(VENV) mattes .pytest_cache .ruff_cache
