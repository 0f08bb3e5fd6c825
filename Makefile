# Skiff: the two commands of the README are `make run` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: deps build run test bench

deps:
	./hack/install-deps.sh

build:
	$(GO) build -o bin/skiff ./cmd/skiff

# Runs a container group from a YAML file in the foreground (FILE=...),
# with a busybox image built locally (no registry needed).
run: deps build
	./hack/busybox-image.sh bin/busybox.tar busybox:local >/dev/null
	./bin/skiff run --import bin/busybox.tar -f $(or $(FILE),examples/hello.yaml)

# Unit and integration tests (root: real runc, CNI, overlayfs, registry).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 80m -p 1 ./...

# create→Running latency against bare runc and podman.
bench: deps
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/
