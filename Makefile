# Skiff: the two commands of the README are `make run` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: deps build run test bench image

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

# create→Running latency against bare runc and podman.
bench: deps
	SKIFF_K8S_BIN="$$(./hack/build-k8s.sh)" && export SKIFF_K8S_BIN && \
		SKIFF_HELM="$$(./hack/build-helm.sh)" && export SKIFF_HELM && \
		$(GO) test -count=1 -run '^$$' -p 1 -bench . -benchtime 1x -timeout 40m ./bench/ ./test/vnode/

# The skiff container image (static binary on scratch) for the virtual node's
# Deployment: make image [IMAGE=registry/skiff:tag], then podman push it.
image:
	./hack/image.sh $(IMAGE)
