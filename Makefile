# The two set-up commands of the README. Each builds .venv from nothing when needed.
.PHONY: demo test test-fast setup browser bench lint

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/raysys demo --out runs/demo

# Debian's chromium for the viewer's browser test (apt-get, as root; else that test skips)
browser:
	bash scripts/setup_browser.sh

test: setup browser
	.venv/bin/python -m pytest -q -p no:cacheprovider

# the quick loop while developing: everything but the tests marked slow
test-fast: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow"

lint: setup
	.venv/bin/ruff check raysys jobs tests benchmarks

bench: setup
	for b in benchmarks/speed/*.py benchmarks/quality/*.py; do .venv/bin/python $$b; done
