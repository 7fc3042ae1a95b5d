# The two front-door commands (see README.md).
.PHONY: run test build bench

## Set up everything and start Slipway on its defaults.
run:
	scripts/run.sh

## Set up everything and run every test.
test:
	scripts/test.sh

build:
	swift build

## Benchmarks with their baselines, side by side.
bench:
	Benchmarks/run.sh
