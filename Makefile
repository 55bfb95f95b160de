# retina — two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_SRC := $(wildcard protos/retina/v1/*.proto)

# Ultralytics never installs packages behind our back; tests never download weights.
export YOLO_AUTOINSTALL ?= 0

.PHONY: setup demo test lint protos bench faults clean

setup: $(STAMP)

# Debian packages for the test RTSP server (GStreamer), installed when we are root on Debian;
# then the virtual environment with everything the project needs. Idempotent.
$(STAMP): pyproject.toml constraints.txt
	@bash scripts/bootstrap-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -rf retina.egg-info  # build by-product; stale copies would shadow the installed entry points
	touch $(STAMP)

demo: setup
	$(BIN)/retina demo

test: setup
	$(BIN)/ruff check .
	YOLO_OFFLINE=1 $(BIN)/python -m pytest -q -ra tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerate the gRPC code from protos/ (checked in; tests/test_protos.py checks it is current).
protos: setup
	$(BIN)/python -m retina.services.core.protogen

# Throughput on this machine (needs ../shared); prints the table the README carries.
bench: setup
	YOLO_OFFLINE=1 $(BIN)/python benchmarks/pipeline_throughput.py \
		--video ../shared/videos/intersection.mp4 --model ../shared/models/yolov8n_coco_int8.onnx --cameras 8
	$(BIN)/python benchmarks/scheduler_placement.py

# Fault suite on a live `retina up` (about 4 minutes; kill -9 of every process, RTSP and disk faults).
faults: setup
	YOLO_OFFLINE=1 $(BIN)/python benchmarks/faults.py --repeats 3 \
		--video ../shared/videos/intersection.mp4 --model ../shared/models/yolov8n_coco_int8.onnx

clean:
	rm -rf var
