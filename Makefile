# The two set-up commands of the README. Each builds .venv from nothing when needed.
.PHONY: demo test test-fast setup browser s3-server bench lint

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/raysys demo --out runs/demo

# Debian's chromium for the viewer's browser test (apt-get, as root; else that test skips)
browser:
	bash scripts/setup_browser.sh

# moto's S3 server for the multi-node tests (its own .venv-s3; else those tests skip)
s3-server:
	bash scripts/setup_s3_server.sh

# --durations: the 25 slowest tests close the log (the suite's 25-minute budget)
test: setup browser s3-server
	.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25

# the quick loop while developing: everything but the tests marked slow
test-fast: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider -m "not slow"

lint: setup
	.venv/bin/ruff check raysys jobs tests benchmarks

bench: setup
	for b in benchmarks/speed/*.py benchmarks/quality/*.py; do .venv/bin/python $$b; done
