# Makefile: the entry points a QEMU user expects.  The build itself is
# meson + ninja in build/.
#
#   make          install missing packages (Debian 12), configure, build
#   make check    the whole test suite (unit, real streams, bad input,
#                 live interop with stock QEMU 10.0 and 7.2); fails on
#                 any skip.  QEMU=PATH names the QEMU 10.0 binary.
#   make check-unit   the unit tests;  make check-qtest  the functional
#                 tests (stock QEMU, real streams and captures)
#   make check-asan   the whole suite once more under ASan + UBSan + LSan
#   make check-cluster  a two-node Pacemaker cluster (corosync, pacemaker,
#                 fencing) protecting the Linux guest, faults and all
#   make demo     the main job: a protected VM, end to end
#   make deb      the Debian package in build/deb, checked by lintian
#   make check-package  installs it into a throwaway root and uses it
#   make lint     cppcheck + clang-tidy, findings are errors
#   make fuzz     each fuzzer for FUZZ_SECONDS (120)
#   make bench    the benchmarks (figures on stdout, plots in bench/out)
#   make soak     the fault tests at full count (20 random kills each):
#                 failover-primary, net-buffer and disk-guest; `make
#                 check` runs the short versions (10, 3 and 3);
#                 colo-journal with 50 outside kills per capture and 7
#                 failover points (8, 3); colo-cuts at every cut point
#                 (every second); libvirt with its Linux guest case; and
#                 15 minutes of the cluster soak (make soak-cluster)
#   make soak-long  the cluster soak for SOAK_HOURS (2): random faults
#                 under load, daemons' memory and fds every minute
#                 (tests/functional/test_cluster_soak.py)

BUILD ?= build
ASAN_BUILD ?= build-asan
SOAK_RUNS ?= 20
# colo-journal: kills from outside per capture (on top of its ~120 hook
# points), and the commit points a real VM fails over from
SOAK_JOURNAL_KILLS ?= 50
SOAK_JOURNAL_POINTS ?= journal-tmp,journal,apply:0,apply:1,apply:200,applied,committed
MESON_TEST_ARGS ?= --print-errorlogs
# The sanitizer run repeats the suite on the same code; to fit CI's time it
# takes every fourth cut point of colo-cuts, one failover run of
# net-buffer, 5 random kills of failover-primary and 2 outside kills per
# capture with one failover point in colo-journal (make check: every
# second point, 3 runs, 10 kills, 8 kills and 3 points; make soak: all).
ASAN_CUTS_STRIDE ?= 4
ASAN_NET_RUNS ?= 1
ASAN_FAILOVER_RUNS ?= 5
ASAN_JOURNAL_KILLS ?= 2
ASAN_JOURNAL_POINTS ?= apply:1
# make check's random kills of failover-primary (make soak: SOAK_RUNS) and
# cut points of colo-cuts (make soak: all of them)
CHECK_FAILOVER_RUNS ?= 10
CHECK_CUTS_STRIDE ?= 2

.PHONY: all deps guest build check check-cluster check-unit check-qtest check-asan lint fuzz demo demo-libvirt \
        bench soak soak-cluster soak-long clean deb check-package

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	./configure --builddir=$(BUILD)

# The real Linux guest of the tests, the benchmarks and the demo, built
# from Debian packages (scripts/build-guest.sh; a no-op when up to date).
guest: deps
	@bash scripts/build-guest.sh $(BUILD)/linux-guest

build: deps $(BUILD)/build.ninja guest
	ninja -C $(BUILD)

# Every target that runs tests ends with scripts/test-summary.py: a
# skipped test (a missing prerequisite, such as QEMU) fails it too.
SUMMARY = python3 scripts/test-summary.py

check: build
	@COLO_FAILOVER_RUNS=$(CHECK_FAILOVER_RUNS) \
	COLO_CUTS_STRIDE=$(CHECK_CUTS_STRIDE) \
	meson test -C $(BUILD) --no-suite cluster --no-suite package --no-suite soak \
	    $(MESON_TEST_ARGS); rc=$$?; \
	$(SUMMARY) $(BUILD) && exit $$rc

# A real two-node Pacemaker cluster on this machine protects the Linux
# guest; the primary's QEMU, colo-secondary, the link and a whole node
# fail in turn (tests/functional/test_cluster.py, docs/cluster.rst).
CLUSTER_LOG = $(BUILD)/meson-logs/testlog-cluster.json
check-cluster: build
	@meson test -C $(BUILD) --suite cluster --logbase testlog-cluster \
	    $(MESON_TEST_ARGS); rc=$$?; $(SUMMARY) $(CLUSTER_LOG) && exit $$rc

# QEMU's names: the unit tests, and the tests that run stock QEMU (and
# the real streams and captures it made)
check-unit: build
	@meson test -C $(BUILD) --suite unit $(MESON_TEST_ARGS); rc=$$?; \
	$(SUMMARY) $(BUILD) && exit $$rc

check-qtest: build
	@meson test -C $(BUILD) --suite functional $(MESON_TEST_ARGS); rc=$$?; \
	$(SUMMARY) $(BUILD) && exit $$rc

$(ASAN_BUILD)/build.ninja:
	./configure --builddir=$(ASAN_BUILD) --enable-sanitizers

# The whole suite again, QEMU-based tests included, with colo-secondary,
# colo-primary and the tools built with ASan + UBSan + LSan (QEMU itself
# is Debian's).  colo-alloc is not in it: it limits the address space,
# which ASan's shadow memory cannot live with (tests/meson.build).
check-asan: deps guest $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	COLO_CUTS_STRIDE=$(ASAN_CUTS_STRIDE) COLO_NET_RUNS=$(ASAN_NET_RUNS) \
	COLO_FAILOVER_RUNS=$(ASAN_FAILOVER_RUNS) \
	COLO_JOURNAL_RANDOM_KILLS=$(ASAN_JOURNAL_KILLS) \
	COLO_JOURNAL_FAILOVER_POINTS=$(ASAN_JOURNAL_POINTS) \
	meson test -C $(ASAN_BUILD) --no-suite cluster --no-suite package --no-suite soak \
	    --timeout-multiplier 3 \
	    $(MESON_TEST_ARGS); \
	rc=$$?; $(SUMMARY) $(ASAN_BUILD) && exit $$rc

lint: build
	bash tools/lint.sh $(BUILD)

# Each libFuzzer harness for FUZZ_SECONDS on its corpus (bench/out/fuzz).
FUZZ_SECONDS ?= 120
fuzz: deps
	bash bench/fuzz.sh $(FUZZ_SECONDS)

DEMO_SHORT ?=
demo: build
	@DEMO_SHORT=$(DEMO_SHORT) bash scripts/demo.sh

# A libvirt domain protected and failed over between two libvirtd of the
# demo's own (docs/libvirt.rst)
demo-libvirt: build
	@DEMO_SHORT=$(DEMO_SHORT) COLO_BUILD_ROOT=$(CURDIR)/$(BUILD) \
	    python3 scripts/demo_libvirt.py

bench: build
	@bash bench/run.sh

# The Debian package (debian/): build/deb/colo-standby_VERSION_amd64.deb,
# checked by lintian; make check-package installs it into a throwaway
# root and runs what it installed (tests/functional/test_package.py).
DEB_DIR = $(BUILD)/deb
deb: deps
	@bash scripts/build-deb.sh $(DEB_DIR)

PACKAGE_LOG = $(BUILD)/meson-logs/testlog-package.json
check-package: deb build
	@COLO_DEB_DIR=$(CURDIR)/$(DEB_DIR) \
	meson test -C $(BUILD) --suite package --logbase testlog-package \
	    $(MESON_TEST_ARGS); rc=$$?; $(SUMMARY) $(PACKAGE_LOG) && exit $$rc

soak: build
	@COLO_FAILOVER_RUNS=$(SOAK_RUNS) COLO_NET_RUNS=$(SOAK_RUNS) \
	COLO_DISK_RUNS=$(SOAK_RUNS) \
	COLO_JOURNAL_RANDOM_KILLS=$(SOAK_JOURNAL_KILLS) \
	COLO_JOURNAL_FAILOVER_POINTS=$(SOAK_JOURNAL_POINTS) COLO_CUTS_STRIDE=1 \
	meson test -C $(BUILD) $(MESON_TEST_ARGS) --timeout-multiplier 4 \
	    failover-primary net-buffer colo-journal disk-guest colo-cuts; \
	rc=$$?; COLO_LIBVIRT_LINUX_GUEST=1 meson test -C $(BUILD) \
	    $(MESON_TEST_ARGS) --logbase testlog-soak-libvirt libvirt \
	    || rc=1; $(SUMMARY) $(BUILD) || rc=1; \
	$(MAKE) --no-print-directory soak-cluster SOAK_SECONDS=900 || rc=1; \
	exit $$rc

# The cluster soak alone: random faults for SOAK_SECONDS (soak-long:
# SOAK_HOURS, 2 by default), then its table and plot (bench/out/soak.png)
SOAK_HOURS ?= 2
SOAK_SECONDS ?= $(shell echo $$(( $(SOAK_HOURS) * 3600 )))
SOAK_OUT = $(CURDIR)/$(BUILD)/meson-logs/soak.jsonl
soak-cluster: build
	@COLO_SOAK_SECONDS=$(SOAK_SECONDS) COLO_SOAK_OUT=$(SOAK_OUT) \
	meson test -C $(BUILD) --suite soak --logbase testlog-soak \
	    $(MESON_TEST_ARGS); rc=$$?; \
	/usr/bin/python3 scripts/soak-report.py $(SOAK_OUT) || rc=1; \
	exit $$rc

soak-long: build
	@$(MAKE) --no-print-directory soak-cluster SOAK_HOURS=$(SOAK_HOURS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
