# The two commands: `make run` (site.yml on this machine, per user) and
# `make test` (the whole suite). Everything else is a part of `make test`.
SHELL := /bin/bash
ARGS ?=

.PHONY: run test bench lint unit collection molecule harness clean

run:
	scripts/run $(ARGS)

test:
	scripts/test

bench:
	scripts/bench $(ARGS)

lint unit collection molecule harness:
	scripts/test $@

clean:
	rm -rf .venv .venv-gce .cache build
