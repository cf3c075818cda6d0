# Tally — build, run and test. Needs Go and gcc (cgo links libsecp256k1).
GO          ?= go
export CGO_ENABLED := 1
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run deploy-check test test-short bench campaign faults sim lint fmt clean

# What --version reports: the version from git describe and the commit
# (Go's own vcs.revision wins where it records one; it does not in a git
# worktree or with GOFLAGS=-buildvcs=false).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/tally-ledger/tally/internal/version.Version=$(VERSION) -X github.com/tally-ledger/tally/internal/version.Commit=$(COMMIT)

build:
	$(GO) build -buildvcs=auto -ldflags "$(LDFLAGS)" -o bin/tallyd ./cmd/tallyd
	$(GO) build -buildvcs=auto -ldflags "$(LDFLAGS)" -o bin/tally ./cmd/tally

# A single-node dev chain on 127.0.0.1:$(PORT) (chain id 1337, data in a
# temp dir removed on exit); make run PORT=8555 when 8545 is taken.
PORT ?= 8545
run: build
	./bin/tallyd --dev --http.port $(PORT)

# Everything CI runs: static checks, then every test (unit, vector, fuzz
# seeds, real-process end-to-end tests; e2e/js_test.go runs `npm ci` in
# clients/js when needed and the npm client suite, docs/wallets.md).
test: lint chromium deploy-check
	$(GO) test -count=1 -timeout 15m ./...

# Only the npm client suite (clients/js, docs/wallets.md) against a real
# tallyd --dev.
test-js: chromium
	$(GO) test -count=1 -run '^TestJSClients$$' -v ./e2e

# Debian's Chromium, which the npm suite's browser checks drive headless
# (a test tool's own browser download does not work on CI machines),
# installed when missing.
export TALLY_CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@test -x $(TALLY_CHROMIUM) || { echo "installing Debian's chromium for the npm suite's browser checks"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
		{ $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }; }

# The operator files under deploy/: promtool (from Debian's prometheus
# package, installed when missing) checks the alert rules and runs their
# unit tests (deploy/prometheus/*.test.yml); node/deploy_test.go and
# bridge/alerts_test.go check that every metric they and the Grafana
# dashboard name is one the code exports.
PROMTOOL ?= promtool
deploy-check:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "installing promtool (Debian's prometheus package)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus || \
		{ $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }; }
	$(PROMTOOL) check rules deploy/prometheus/*-rules.yml
	cd deploy/prometheus && $(PROMTOOL) test rules *.test.yml
	@# systemd-analyze verify on copies whose ExecStart is /bin/true (it
	@# refuses a binary that is not installed here); any remark fails.
	@if command -v systemd-analyze >/dev/null 2>&1; then \
		tmp=$$(mktemp -d) && for u in deploy/systemd/*.service; do \
			sed 's|^ExecStart=/usr/local/bin/|ExecStart=/bin/true |' $$u > $$tmp/$${u##*/}; done && \
		out=$$(systemd-analyze verify $$tmp/*.service 2>&1); rm -rf $$tmp; \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "systemd-analyze verify deploy/systemd: OK"; \
	else echo "systemd-analyze not installed: deploy/systemd not verified"; fi

test-short:
	$(GO) test -count=1 -short ./...

# Micro-benchmarks, then tally bench on one node and on a three-node
# testnet (bench/cases.sh; JSON lines in bench-results.jsonl).
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./chain ./state ./store ./rpc
	bash bench/cases.sh

# The seeded bridge campaign (e2e/campaign_test.go) over SEEDS seeds from
# FIRST (default 1..20); SEED=N replays one seed.
SEEDS ?= 20
FIRST ?= 1
campaign:
	TALLY_CAMPAIGN_SEEDS=$(SEEDS) TALLY_CAMPAIGN_FIRST=$(FIRST) TALLY_CAMPAIGN_SEED=$(SEED) \
		$(GO) test -count=1 -timeout 0 -run '^TestBridgeCampaign$$' -v ./e2e

# The real-process fault campaign (e2e/faults_test.go): ROUNDS rounds of
# faults (SIGKILL, SIGSTOP, isolation of the leader or a follower, two
# nodes down, all down) on three tallyd under load; SEED picks the faults
# (default 1; `make test` runs 4 rounds of seed 1).
ROUNDS ?= 20
faults:
	TALLY_FAULT_ROUNDS=$(ROUNDS) TALLY_FAULT_SEED=$(SEED) \
		$(GO) test -count=1 -timeout 0 -run '^TestFaultCampaign$$' -v ./e2e

# The cluster simulator (internal/sim, docs/architecture.md): make test runs
# 200 seeds; make sim SEEDS=N runs N seeds (1000 by default) from FIRST, and
# make sim SEED=N replays one seed (STEPS=N scheduler steps per seed), in a
# process of its own with the Go runtime's random seed fixed (internal/simexec);
# RTSEED=K derives that from K too, for another path of the seed. FAULTS=
# kind:weight,... runs the seeds with those fault weights instead of the
# defaults (as a failed run's replay command prints them; none: no fault).
STEPS ?= 2000
sim:
	$(GO) test -count=1 -timeout 0 -run '^TestSim$$' -v ./internal/sim -steps=$(STEPS) $(if $(FAULTS),-faults=$(FAULTS)) \
		$(if $(SEED),-seed=$(SEED) $(if $(RTSEED),-rtseed=$(RTSEED)),-first=$(FIRST) -seeds=$(if $(filter command line,$(origin SEEDS)),$(SEEDS),1000))

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
