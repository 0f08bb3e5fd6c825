# Skiff: the two commands of the README are `make run` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
SHELL := /bin/bash
GO ?= go

.PHONY: deps build run test test-cluster-mode fuzz bench image

deps:
	./hack/install-deps.sh

build:
	$(GO) build -o bin/ ./cmd/skiff
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/skiff-shim
	@ln -sf $(CURDIR)/bin/skiff /usr/local/bin/skiff 2>/dev/null || true

# Runs skiff server in the foreground with embedded defaults. It also builds
# bin/busybox.tar, a busybox image for hosts without registry access.
run: deps build
	./hack/busybox-image.sh bin/busybox.tar busybox:local >/dev/null
	./bin/skiff server $(SERVER_FLAGS)

# Unit and integration tests (root: real runc, CNI, overlayfs, registry).
test: deps
	$(GO) vet ./...
	SKIFF_K8S_BIN="$$(./hack/build-k8s.sh)" && export SKIFF_K8S_BIN && \
		SKIFF_HELM="$$(./hack/build-helm.sh)" && export SKIFF_HELM && \
		$(GO) test -count=1 -timeout 80m -p 1 ./... && \
		$(MAKE) test-cluster-mode
	$(MAKE) fuzz

# The end-to-end suite again, and the virtual node's cases that go from the
# server to a host (streams, stats, pulls, ports, updates, scaling), against
# a cluster (etcd, a server with --agent=false and one skiff agent) instead
# of the embedded server (SKIFF_TEST_MODE, internal/testenv/modes.go).
VNODE_CLUSTER_CASES = NodeRegistration|PodWithNodeNameRuns|HostPortPublished|ConfigAndLogsAndExec|MissingImageShowsPullError|LogsOptionsAndAttach|StatsSummaryAndMetrics|SetImage|DeploymentScale
# The end-to-end tests that check the API's or the runtime's own rules, the
# same code in both modes, run in the embedded mode only (CI's time): the
# security policy, bad volumes, the template language's loops and errors,
# the operator's certificate and plain HTTP refusals, the client-side logins.
E2E_EMBEDDED_ONLY = TestSecurityContextPolicy|TestSecurityContextAllowPrivileged|TestBadVolumesAreRefusedAtPut|TestDeploymentLoopsModesAndBadTemplates|TestTLSServesTheOperatorsCertificate|TestTLSRefusesPlainHTTPOffLoopback|TestClientServicePrincipal|TestCLIServicePrincipalLogin
test-cluster-mode:
	SKIFF_K8S_BIN="$$(./hack/build-k8s.sh)" && export SKIFF_K8S_BIN && \
		SKIFF_HELM="$$(./hack/build-helm.sh)" && export SKIFF_HELM && \
		SKIFF_TEST_MODE=cluster $(GO) test -count=1 -timeout 40m -p 1 -skip '^($(E2E_EMBEDDED_ONLY))$$' ./test/e2e/ && \
		SKIFF_TEST_MODE=cluster $(GO) test -count=1 -timeout 20m -p 1 -run '^TestVirtualNode$$/^($(VNODE_CLUSTER_CASES))$$' ./test/vnode/

# Each fuzz target for a count of executions, one at a time (seed corpora in
# the packages' testdata/fuzz). A failing input is written there; commit it
# with the fix. Counts, not durations: Go 1.26's coordinator can report a bare
# "context deadline exceeded" when a -fuzztime duration ends with a worker
# mid-call (go.dev/issue/75804, fixed in 1.27); a count has no deadline to
# race. Each count is about 15 s on this 2-core machine (CI time is tight). A short minimization (a count too)
# keeps a new input from pausing the run for the default minute.
FUZZ_TARGETS = ./api/:FuzzDecodeContainerGroup:200000x ./api/:FuzzDecodeBodies:200000x \
	./internal/server/:FuzzPutContainerGroup:50000x ./internal/runtime/image/:FuzzUnpackLayer:8000x \
	./internal/template/:FuzzExpression:100000x ./api/:FuzzDecodeDeployment:50000x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$${rest##*:}; \
		echo "fuzz $$name in $$pkg for $$n"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(or $(FUZZTIME),$$n) -fuzzminimizetime 2000x $$pkg; \
	done

# Every benchmark against its peers in one run, then one table of their
# rows (testenv.BenchRow) with issue 14's goals.
BENCH_OUT ?= /tmp/skiff-bench.out
bench: deps
	set -o pipefail; SKIFF_K8S_BIN="$$(./hack/build-k8s.sh)" && export SKIFF_K8S_BIN && \
		SKIFF_HELM="$$(./hack/build-helm.sh)" && export SKIFF_HELM && \
		$(GO) test -count=1 -run '^$$' -p 1 -bench . -benchtime 1x -timeout 40m ./bench/ ./test/vnode/ 2>&1 | tee $(BENCH_OUT)
	./hack/bench-table.sh $(BENCH_OUT)

# The skiff container image (static binary on scratch) for the virtual node's
# Deployment: make image [IMAGE=registry/skiff:tag], then podman push it.
image:
	./hack/image.sh $(IMAGE)
