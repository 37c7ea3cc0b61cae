# meshlens — build, test, run. `make help` lists the targets.
.DEFAULT_GOAL := all

BUILD    ?= build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
# -dirty: uncommitted changes, but for bench/results.md (make bench rewrites it)
VERSION  ?= $(shell v=$$(git describe --tags --always 2>/dev/null) && \
	      { git diff --quiet HEAD -- . ':(exclude)bench/results.md' && echo $$v || echo $$v-dirty; } || \
	      echo 0.1.0-dev)

ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wmissing-field-initializers -Werror=undef \
	    -I. -I$(BUILD) -DMESHLENS_VERSION='"$(VERSION)"'
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Ibpf/vmlinux -Ibpf
# deferred (=, not :=): on a fresh machine libnl is installed by `make deps`,
# which runs before anything is compiled, after this file was parsed
NL_CFLAGS = $(shell pkg-config --cflags libnl-3.0 libnl-route-3.0 2>/dev/null)
NL_LIBS   = $(shell pkg-config --libs libnl-3.0 libnl-route-3.0 2>/dev/null)
CFLAGS   += $(NL_CFLAGS)
LDLIBS    = -lbpf -lelf -lz -lcjson -lmicrohttpd -lpthread -lcap $(NL_LIBS)

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# gcc's -Wstringop-* analysis misfires on ASan-instrumented code
CFLAGS  += $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null)),,-Wno-stringop-overread)
LDFLAGS += -fsanitize=address,undefined
endif

# the common library (lib/) and the access log's three parts
LIB_SRCS       := lib/names.c lib/table.c lib/file.c lib/parse.c lib/util.c
ACCESSLOG_SRCS := accesslog/format.c accesslog/sink.c accesslog/rotate.c
DAEMON_SRCS := daemon/main.c daemon/options.c daemon/loader.c daemon/pipeline.c daemon/ring.c \
	       daemon/metadata.c daemon/loop.c daemon/drain.c daemon/live.c daemon/dropfeed.c \
	       daemon/scrape.c daemon/reload.c daemon/privs.c daemon/actions.c cgroup/cgroup.c \
	       $(ACCESSLOG_SRCS) $(LIB_SRCS) metrics/metrics.c metrics/expo.c metrics/http.c \
	       metrics/retrans.c drops/reasons.c drops/drops.c drops/diagnose.c drops/byworkload.c
# the core object and one object per optional feature (bpf/maps.h)
BPF_OBJS    := core failures live drops retrans
BPF_SKELS   := $(BPF_OBJS:%=$(BUILD)/%.skel.h)
UNIT_TESTS  := $(patsubst tests/unit/test_%.c,%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps run test unit e2e vmtest bench fuzz vmlinux clean help FORCE
.SECONDARY:

all: $(BUILD)/meshlens $(BUILD)/mltraffic $(BUILD)/mlpkt ## build the daemon and the test traffic tools

deps: ## install missing Debian packages (idempotent)
	@deploy/install-deps.sh

$(BUILD) $(BUILD)/tests:
	@mkdir -p $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) bpf/vmlinux/vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(BUILD)/meshlens: $(DAEMON_SRCS) $(wildcard */*.h) $(BPF_SKELS) $(BUILD)/version
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(DAEMON_SRCS) $(LDLIBS)

# the version the daemon says (MESHLENS_VERSION), rewritten only when it
# changed: a commit alone rebuilds the daemon, a build with none does not
$(BUILD)/version: FORCE | $(BUILD)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' >$@
FORCE:

$(BUILD)/mltraffic $(BUILD)/mlpkt: $(BUILD)/%: tests/tools/%.c tests/tools/toolargs.h | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# unit tests: tests/unit/test_X.c linked with the module sources it tests
$(BUILD)/tests/test_accesslog: $(ACCESSLOG_SRCS)
$(BUILD)/tests/test_options: daemon/options.c
$(BUILD)/tests/test_metadata: daemon/metadata.c accesslog/format.c
$(BUILD)/tests/test_loop: daemon/loop.c
$(BUILD)/tests/test_cgroup: cgroup/cgroup.c
$(BUILD)/tests/test_metrics: metrics/metrics.c metrics/expo.c
$(BUILD)/tests/test_http: metrics/http.c
$(BUILD)/tests/test_reasons: drops/reasons.c
$(BUILD)/tests/test_diagnose: drops/diagnose.c metrics/expo.c
$(BUILD)/tests/test_byworkload: drops/byworkload.c drops/drops.c drops/reasons.c metrics/expo.c
$(BUILD)/tests/test_loader: cgroup/cgroup.c metrics/expo.c $(BPF_SKELS) # loader.c, included, needs the skeletons
$(BUILD)/tests/test_pipeline: daemon/pipeline.c daemon/metadata.c $(ACCESSLOG_SRCS) \
			      drops/reasons.c metrics/metrics.c metrics/expo.c
$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_SRCS) $(wildcard */*.h) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(filter %.c,$(filter-out $<,$^)) -lcmocka $(LDLIBS)

# run and test install what is missing first, in a sub-make of their own, so
# that nothing is compiled (or pkg-config asked) before the packages are there
run: deps ## install deps, build, run on the cgroup v2 root, access log on stdout
	@$(MAKE) --no-print-directory all
	$(BUILD)/meshlens $(ARGS)

FUZZ_SECONDS ?= 60

test: deps ## short fuzz run, unit tests (cmocka), end-to-end tests (bats, real kernel)
	@$(MAKE) --no-print-directory all $(UNIT_TESTS:%=$(BUILD)/tests/test_%)
	@BUILD=$(BUILD) fuzz/run.sh 5
	@tests/run.sh $(BUILD)

# The kernel matrix: the kernel-dependent end-to-end tests (all but those
# marked host-only) on Debian's 5.10, 6.1 and 6.12 in qemu; make test is the
# host kernel's part. VM_KERNELS="6.1" runs one.
VM_E2E  ?= accesslog cli drops metrics reliability workload
vmtest: deps ## the end-to-end tests on the kernel matrix (5.10, 6.1, 6.12 in qemu; tests/vm/)
	@$(MAKE) --no-print-directory all
	@VM_TESTS="$(VM_E2E)" VM_FILTER="$$(tests/vm/select.sh $(VM_E2E:%=tests/e2e/%.bats))" \
	  MESHLENS_E2E_LIVE_BYTES=$${MESHLENS_E2E_LIVE_BYTES:-200000000} tests/vm/vmtest.sh $(BUILD)

fuzz: deps ## libFuzzer targets (ASan+UBSan), FUZZ_SECONDS each (default 60)
	@BUILD=$(BUILD) fuzz/run.sh $(FUZZ_SECONDS)

unit: all $(UNIT_TESTS:%=$(BUILD)/tests/test_%) ## unit tests only
	@tests/run.sh --unit $(BUILD)

e2e: all ## end-to-end tests only
	@tests/run.sh --e2e $(BUILD)

$(BUILD)/bench_pipeline: bench/bench_pipeline.c daemon/pipeline.c daemon/metadata.c $(ACCESSLOG_SRCS) \
			  $(LIB_SRCS) drops/reasons.c metrics/metrics.c metrics/expo.c $(wildcard */*.h) | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c,$^) $(LDLIBS)

# what meshlens's BPF cost is measured against (bench/cost.sh)
BENCH_BPF := $(BUILD)/bench/floor.bpf.o $(BUILD)/bench/empty.bpf.o
$(BUILD)/bench/%.bpf.o: bench/bpf/%.bpf.c bpf/probe.h bpf/vmlinux/vmlinux.h
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# the ablations bench/cost.sh measures: meshlens without open records, and
# without any record (bpf/conn.h)
$(BUILD)/bench/noopen/meshlens $(BUILD)/bench/norec/meshlens: $(BUILD)/bench/%/meshlens: $(DAEMON_SRCS) $(wildcard */*.h)
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/bench/$* \
	  BPF_CFLAGS="$(BPF_CFLAGS) -DML_BENCH_NO_$(if $(filter noopen,$*),OPEN,RECORDS)" $@

bench: ## benchmarks: overhead, BPF cost vs floor and peer, throughput, memory, loss -> bench/results.md
	@deploy/install-deps.sh --bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench_pipeline $(BENCH_BPF) \
	  $(BUILD)/bench/noopen/meshlens $(BUILD)/bench/norec/meshlens
	@bench/run.sh $(BUILD)

vmlinux: ## regenerate bpf/vmlinux/vmlinux.h from this kernel's BTF
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux/vmlinux.h

clean: ## remove build outputs
	rm -rf $(BUILD)

help: ## list targets
	@grep -E '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10
