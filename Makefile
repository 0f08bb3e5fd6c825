# Skiff: the two commands of the README are `make run` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: deps build run test fuzz bench image

deps:
	./hack/install-deps.sh

build:
	$(GO) build -o bin/skiff ./cmd/skiff
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
		$(GO) test -count=1 -timeout 80m -p 1 ./...
	$(MAKE) fuzz

# Each fuzz target for a count of executions, one at a time (seed corpora in
# the packages' testdata/fuzz). A failing input is written there; commit it
# with the fix. Counts, not durations: Go 1.26's coordinator can report a bare
# "context deadline exceeded" when a -fuzztime duration ends with a worker
# mid-call (go.dev/issue/75804, fixed in 1.27); a count has no deadline to
# race. Each count is about 30 s on this 2-core machine. A short minimization (a count too)
# keeps a new input from pausing the run for the default minute.
FUZZ_TARGETS = ./api/:FuzzDecodeContainerGroup:400000x ./api/:FuzzDecodeBodies:400000x \
	./internal/server/:FuzzPutContainerGroup:100000x ./internal/runtime/image/:FuzzUnpackLayer:15000x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$${rest##*:}; \
		echo "fuzz $$name in $$pkg for $$n"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(or $(FUZZTIME),$$n) -fuzzminimizetime 2000x $$pkg; \
	done

# create→Running latency against bare runc and podman.
bench: deps
	SKIFF_K8S_BIN="$$(./hack/build-k8s.sh)" && export SKIFF_K8S_BIN && \
		SKIFF_HELM="$$(./hack/build-helm.sh)" && export SKIFF_HELM && \
		$(GO) test -count=1 -run '^$$' -p 1 -bench . -benchtime 1x -timeout 40m ./bench/ ./test/vnode/

# The skiff container image (static binary on scratch) for the virtual node's
# Deployment: make image [IMAGE=registry/skiff:tag], then podman push it.
image:
	./hack/image.sh $(IMAGE)
