# remote_pull: maddy with an in-process mail fetcher.
#
#   make build   the custom maddy binary, bin/maddy
#   make test    everything, on a fresh machine (installs Dovecot when missing)
#   make demo    a throw-away Dovecot with sample mail, pulled into maddy
#   make bench   bulk-import and latency figures (docs/benchmarks.md)

GO      ?= go
BIN     := bin/maddy
export REMOTE_PULL_MADDY := $(CURDIR)/$(BIN)

.PHONY: all build deps test unit integration lint demo bench soak interop clean

all: build

# remote_pull's version in 'maddy version': the git description of the
# checkout, when there is one (else the Go build info decides).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X main.Version=$(VERSION))

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/maddy

# deps installs what the end-to-end tests run against. In CI a missing
# dependency fails the run; nothing is skipped silently.
deps:
	@scripts/ensure-deps

# third_party/ holds other projects' code as they wrote it (plus patches):
# not reformatted, but checked to be exactly pristine + patches. go vet
# ./... does not reach it (each copy is a module of its own).
# verify-docker replays the Dockerfile's build stage without Docker.
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' ':!third_party' 2>/dev/null || find . -name '*.go' -not -path './third_party/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	third_party/update --check
	$(GO) mod tidy -diff
	@scripts/verify-dist
	@scripts/verify-docker

# github.com/foxcpp/go-imap-sql (maddy's storage) and go-imap v2 (the IMAP
# client) are patched in third_party/: their own tests run on the copies.
THIRD_PARTY = github.com/foxcpp/go-imap-sql github.com/emersion/go-imap/v2/...

unit:
	$(GO) test -race -count=1 ./remotepull/... ./internal/... ./pop3/... ./cmd/... $(THIRD_PARTY)

integration: build
	$(GO) test -count=1 -timeout 40m ./integration/...

# The IMAP source also under the race detector: go-imap reads in a
# goroutine of its own, and a cut literal once raced inside it.
test: deps lint build
	$(GO) test -count=1 -timeout 45m ./... $(THIRD_PARTY)
	$(GO) test -race -count=1 ./internal/source/imapsrc/

demo: deps build
	$(GO) run ./integration/cmd/demo

bench: build
	REMOTE_PULL_BENCH=1 scripts/ensure-deps
	$(GO) run ./integration/cmd/bench $(BENCHFLAGS)

soak: build
	@scripts/ensure-deps
	$(GO) run ./integration/cmd/soak $(SOAKFLAGS)

# interop runs the end-to-end basics against Cyrus IMAP, Courier IMAP and
# POP3, GNU Mailutils imap4d and pop3d, and popa3d (README "Interoperability").
# The setup unpacks their Debian packages into a cache without installing
# them (they conflict with Dovecot) and installs the libraries they need;
# it and the tests need root.
interop: build
	@integration/interop/setup.sh
	$(GO) test -tags interop -count=1 -timeout 30m -parallel 4 -v ./integration/interop/ $(INTEROPFLAGS)

clean:
	rm -rf bin
