# tugboat — common tasks. `make help` lists them.
SHELL := /bin/bash
TESTENV_STATE := target/testenv
export TUGBOAT_TEST_KUBECONFIG := $(CURDIR)/$(TESTENV_STATE)/kubeconfig

.PHONY: help build image test test-unit testenv-build testenv-up testenv-down crds fmt lint demo demo-down docs

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## Build the tugboat binary (release)
	cargo build --release --locked

test: ## Run every test against a real control plane and a real node (started and stopped here if not already running)
	@set -o pipefail; started=0; \
	echo "==> test environment: Debian packages, control-plane and chart tools (cached after the first build)"; \
	testenv/deps.sh && testenv/build.sh >/dev/null || exit 1; \
	if ! testenv/status.sh $(TESTENV_STATE) >/dev/null 2>&1; then \
	  echo "==> starting the control plane, kwok nodes and a real node"; \
	  testenv/up.sh $(TESTENV_STATE) >/dev/null || exit 1; started=1; \
	fi; \
	echo "==> the operator's image (Dockerfile, buildah; cached by its inputs)"; \
	image=$$(testenv/image.sh $(TESTENV_STATE)); rc=$$?; \
	if [ $$rc = 0 ]; then \
	  echo "==> cargo test (image $$image)"; \
	  TUGBOAT_REQUIRE_CLUSTER=1 TUGBOAT_TEST_IMAGE=$$image cargo test --locked --all-targets; rc=$$?; \
	fi; \
	if [ $$started = 1 ]; then testenv/down.sh $(TESTENV_STATE); fi; \
	exit $$rc

test-unit: ## Run only the tests that need no control plane
	cargo test --locked --lib --test crds --test render_table --test render_props --test render_api --test overrides

demo: ## Local control plane + operator + Git server; deploys an app and redeploys it with a webhook call (DEMO_MODE=helm: the operator's image by Helm, on a real node)
	@demo/up.sh

demo-down: ## Stop everything `make demo` started
	@demo/down.sh

testenv-build: ## Build (or reuse) the control-plane binaries from their Go modules
	testenv/deps.sh
	testenv/build.sh

image: ## Build the operator's image with buildah (localhost/tugboat:KEY; imported into a running test node)
	@testenv/image.sh $(TESTENV_STATE)

testenv-up: ## Start the local control plane, two kwok nodes and a real node; prints the kubeconfig path
	@testenv/up.sh $(TESTENV_STATE)

testenv-down: ## Stop the local control plane
	@testenv/down.sh $(TESTENV_STATE)

crds: ## Regenerate crds/ (and the chart's copy) from the Rust types
	TUGBOAT_UPDATE_CRDS=1 cargo test --locked --test crds

docs: ## Regenerate docs/reference.md from the CRD schemas
	TUGBOAT_UPDATE_DOCS=1 cargo test --locked --test reference committed_reference_matches_the_crds

fmt: ## Format the code
	cargo fmt --all

lint: ## fmt check, clippy with warnings as errors, hadolint on the Dockerfile
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	testenv/hadolint.sh Dockerfile
