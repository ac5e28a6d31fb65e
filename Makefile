# PCIe port services in the PCI core: the series (patches/) and its harness.
#   make run    - build the series kernel and boot it in QEMU, show the ports
#   make check  - the whole test suite (base and series kernels, static checks)
# See README.md.
SHELL := /bin/bash
BUILD ?= $(CURDIR)/build
export BUILD
LOGDIR ?= $(BUILD)/logs
PY := python3

# The target (targets/*.conf): lts = 6.12 with v1 (default), mainline = 7.3
TARGET ?= lts
export TARGET
TARGET_CONF := targets/$(TARGET).conf
ifeq ($(wildcard $(TARGET_CONF)),)
$(error unknown TARGET '$(TARGET)': targets/ has $(basename $(notdir $(wildcard targets/*.conf))))
endif
TSUB       := $(shell sed -n 's/^BUILD_SUBDIR=//p' $(TARGET_CONF))
TBUILD     := $(BUILD)$(if $(TSUB),/$(TSUB))
BASE_IMG   = $(TBUILD)/linux-base/.obj-guest/arch/x86/boot/bzImage
SERIES_IMG = $(TBUILD)/linux/.obj-guest/arch/x86/boot/bzImage
INITRD     = $(BUILD)/initramfs.cpio.gz
# The mainline target's kernels, which make check runs beside the default's
ML_BASE_IMG   = $(BUILD)/mainline/linux-base/.obj-guest/arch/x86/boot/bzImage
ML_SERIES_IMG = $(BUILD)/mainline/linux/.obj-guest/arch/x86/boot/bzImage
QEMU_BIN   = $(BUILD)/qemu-build/qemu-system-x86_64
# The arm64 guests (issue 14): the mainline target's kernels cross-compiled
# for QEMU virt, and their initramfs
ML_ARM64_BASE_IMG   = $(BUILD)/mainline/linux-base/.obj-arm64/arch/arm64/boot/Image
ML_ARM64_SERIES_IMG = $(BUILD)/mainline/linux/.obj-arm64/arch/arm64/boot/Image
ARM64_INITRD = $(BUILD)/initramfs-arm64.cpio.gz

.PHONY: arm64-kernels check-arm64 bench-callers help lts-only mainline-tree mainline-kernels deps tree export outgoing kernels kernel-base kernel-series initramfs qemu qemu-export run check \
	check-quick check-static check-series check-debug check-mutants bench clean

help:
	@sed -n 's/^#   make/  make/p' Makefile; echo "  (also: deps tree export outgoing kernels check-series check-debug check-mutants bench)"

deps:
	@bash scripts/deps.sh

tree: deps
	@bash scripts/tree.sh

export:
	@bash scripts/export.sh

# The series ready to post: signed by the submitter from git config
# (format-patch --signoff) into build/outgoing/$(TARGET)/.  README, Posting.
outgoing: tree
	@bash scripts/outgoing.sh

kernel-base: tree
	@bash scripts/kbuild.sh base >/dev/null

kernel-series: tree
	@bash scripts/kbuild.sh series >/dev/null

kernels: kernel-base kernel-series

initramfs: deps
	@bash scripts/initramfs.sh >/dev/null

# The project's QEMU: Debian's 7.2 source with qemu/patches (test devices).
qemu: deps
	@bash scripts/qemu.sh >/dev/null

qemu-export:
	@bash scripts/qemu.sh export

# Topologies whose devices only the project's QEMU has
PROJECT_TOPOLOGIES := msix many-msix dpc cxl-project

run: kernel-series initramfs $(if $(filter $(PROJECT_TOPOLOGIES),$(TOPOLOGY)),qemu)
	@$(if $(filter $(PROJECT_TOPOLOGIES),$(TOPOLOGY)),QEMU=$(QEMU_BIN)) $(PY) scripts/show.py --kernel $(SERIES_IMG) \
		--initrd $(INITRD) --topology $(or $(TOPOLOGY),basic)

# The suite's expectations (tests/host/expected.py, ports.py) are 6.12's
# and v1's; the mainline target gets its own with series v2.
lts-only:
	@[ "$(TARGET)" = lts ] || { echo "ERROR: 'make $(MAKECMDGOALS)' runs the suite, whose expectations are 6.12's and v1's so far; for TARGET=$(TARGET) use 'make tree', 'make kernels' and 'make run'" >&2; exit 1; }

# Series v2 on the 7.3 base (fetched from Debian's experimental suite):
# the static checks run 7.3's checkpatch on it, and the guests run its
# kselftest, so make check needs it applied.
mainline-tree: deps
	@TARGET=mainline bash scripts/tree.sh

# 7.3 base and series v2: make check runs the mainline scenarios on them
# (tests/host/mainline.py) and the static checks build their touched files.
mainline-kernels: mainline-tree
	@TARGET=mainline bash scripts/kbuild.sh base >/dev/null
	@TARGET=mainline bash scripts/kbuild.sh series >/dev/null

# The arm64 guests (issue 14): base and series of each target in
# ARM64_TARGETS cross-compiled for QEMU virt, and the arm64 initramfs
# (Debian's arm64 busybox, pciutils, bash and rasdaemon)
# (make check: both targets; CI: the mainline target, as its time allows)
ARM64_TARGETS ?= $(if $(CI),mainline,mainline lts)
ARM64_BASE_IMG   = $(BUILD)/linux-base/.obj-arm64/arch/arm64/boot/Image
ARM64_SERIES_IMG = $(BUILD)/linux/.obj-arm64/arch/arm64/boot/Image
arm64-kernels: mainline-tree tree
	@$(foreach t,$(ARM64_TARGETS),TARGET=$(t) bash scripts/kbuild.sh base arm64 >/dev/null && \
		TARGET=$(t) bash scripts/kbuild.sh series arm64 >/dev/null &&) true
	@GUEST_ARCH=arm64 bash scripts/initramfs.sh >/dev/null

# The arm64 scenarios alone (tests/host/targets.py, ARM64_SCENARIOS) on
# base and series of each target in ARM64_TARGETS, booted with a device
# tree and through UEFI with ACPI (ARM64_BOOTS=dt or acpi for one of them)
ARM64_BOOTS ?= dt,acpi
check-arm64: lts-only arm64-kernels
	@mkdir -p $(LOGDIR)
	@$(PY) tests/run.py $(ARM64_ARGS) \
		--logdir $(LOGDIR) $(if $(ONLY),--only $(ONLY)) $(if $(WRITE_MANIFEST),--write-manifest)

# CI (CI set, as .ci/run is) runs every mainline scenario and, on 6.12 and
# v1, the named subset below: what only v1 has (its CXL port PMUs and DOE
# interrupts, which the mainline target does not run yet), its KUnit suite
# and the basic services; the mainline target runs all the rest on 7.3.
# A cold machine needs 55 of CI's 90 minutes to build the four kernels
# and QEMU (measured).  Elsewhere make check runs everything; 'make check
# LTS_SCENARIOS=' does under CI too.
CI_LTS_SCENARIOS = kunit,services-basic,cxl-project
LTS_SCENARIOS ?= $(if $(CI),$(CI_LTS_SCENARIOS))

# make check runs the arm64 scenarios too (CHECK_ARM64=0 leaves them out),
# as check-arm64 does: base and series of each target in ARM64_TARGETS,
# with the boots in ARM64_BOOTS (about 5 minutes for the mainline target).
# CI on a machine whose ccache is cold (.ci/run sets CI_COLD) leaves them
# out, reported as skipped: building the two arm64 kernels there takes 27
# minutes, which does not fit in CI's 90 with the rest.
CHECK_ARM64 ?= $(if $(CI_COLD),0,1)
ARM64_NOT_RUN = --not-run "arm64 kernels ($(ARM64_TARGETS))=the ccache is cold: building them \
	does not fit in CI's 90 minutes (make check-arm64 runs them)"
# The arm64 kernels of a target left out of ARM64_TARGETS (CI: the 6.12
# target's), reported as skipped
ARM64_LEFT_OUT = $(if $(filter lts,$(ARM64_TARGETS)),,--not-run "arm64 kernels (lts)=ARM64_TARGETS \
	leaves the 6.12 target out (CI: its time; make check-arm64 ARM64_TARGETS=lts runs them)")
ARM64_ARGS = --arm64-initrd $(ARM64_INITRD) --arm64-boots $(ARM64_BOOTS) \
	$(if $(filter mainline,$(ARM64_TARGETS)),--mainline-arm64-base $(ML_ARM64_BASE_IMG) \
		--mainline-arm64-series $(ML_ARM64_SERIES_IMG)) \
	$(if $(filter lts,$(ARM64_TARGETS)),--arm64-base $(ARM64_BASE_IMG) \
		--arm64-series $(ARM64_SERIES_IMG))

# The whole suite: QEMU scenarios on both kernels, the differential, static checks.
check: lts-only mainline-kernels kernels initramfs qemu $(if $(filter 1,$(CHECK_ARM64)),arm64-kernels)
	@mkdir -p $(LOGDIR)
	@$(PY) tests/run.py --base $(BASE_IMG) --series $(SERIES_IMG) --initrd $(INITRD) \
		--mainline-base $(ML_BASE_IMG) --mainline-series $(ML_SERIES_IMG) \
		--qemu $(QEMU_BIN) --logdir $(LOGDIR) --static $(if $(ONLY),--only $(ONLY)) \
		$(if $(LTS_SCENARIOS),--lts-scenarios $(LTS_SCENARIOS)) \
		$(if $(filter 1,$(CHECK_ARM64)),$(ARM64_ARGS) $(ARM64_LEFT_OUT),$(if $(CI_COLD),$(ARM64_NOT_RUN) $(ARM64_LEFT_OUT))) \
		$(if $(WRITE_MANIFEST),--write-manifest)

# Only the series kernel's scenarios (for quick iteration).
check-quick: lts-only kernel-series initramfs qemu
	@mkdir -p $(LOGDIR)
	@$(PY) tests/run.py --series $(SERIES_IMG) --initrd $(INITRD) --logdir $(LOGDIR) \
		--qemu $(QEMU_BIN) $(if $(ONLY),--only $(ONLY))

check-static: lts-only tree mainline-kernels
	@$(PY) tests/run.py --static-only

# Every patch builds on its own (W=1, sparse on the files it touches) and
# passes checkpatch --strict.
check-series: lts-only tree mainline-kernels
	@$(PY) tests/run.py --static-only --each-patch

# Lockdep, KASAN, kmemleak and friends (configs/debug.config) on the base and
# series kernels of each target in DEBUG_TARGETS (default: both).
DEBUG_TARGETS ?= lts mainline
check-debug: lts-only tree initramfs qemu $(if $(filter mainline,$(DEBUG_TARGETS)),mainline-tree)
	$(if $(filter lts,$(DEBUG_TARGETS)),@bash scripts/kbuild.sh base debug >/dev/null)
	$(if $(filter lts,$(DEBUG_TARGETS)),@bash scripts/kbuild.sh series debug >/dev/null)
	$(if $(filter mainline,$(DEBUG_TARGETS)),@TARGET=mainline bash scripts/kbuild.sh base debug >/dev/null)
	$(if $(filter mainline,$(DEBUG_TARGETS)),@TARGET=mainline bash scripts/kbuild.sh series debug >/dev/null)
	@mkdir -p $(LOGDIR)/debug
	@$(PY) tests/run.py --initrd $(INITRD) --qemu $(QEMU_BIN) --logdir $(LOGDIR)/debug --debug \
		$(if $(filter lts,$(DEBUG_TARGETS)),--base $(BUILD)/linux-base/.obj-debug/arch/x86/boot/bzImage \
			--series $(BUILD)/linux/.obj-debug/arch/x86/boot/bzImage) \
		$(if $(filter mainline,$(DEBUG_TARGETS)),--mainline-base $(BUILD)/mainline/linux-base/.obj-debug/arch/x86/boot/bzImage \
			--mainline-series $(BUILD)/mainline/linux/.obj-debug/arch/x86/boot/bzImage) \
		$(if $(ONLY),--only $(ONLY))

# Deliberately broken variants (one-line kernel bugs, missing tools): each
# must make the suite fail in the check meant to catch it.  Not part of CI.
check-mutants: lts-only kernel-series initramfs qemu
	@$(PY) tests/mutants.py --initrd $(INITRD) --qemu $(QEMU_BIN) --logdir $(LOGDIR)/mutants \
		$(if $(ONLY),--only $(ONLY))

bench: lts-only kernels mainline-kernels initramfs qemu
	@$(PY) scripts/bench.py --base $(BASE_IMG) --series $(SERIES_IMG) \
		--mainline-base $(ML_BASE_IMG) --mainline-series $(ML_SERIES_IMG) --initrd $(INITRD) \
		--qemu $(QEMU_BIN) --out $(BUILD)/bench $(if $(BENCH_TARGETS),--targets $(BENCH_TARGETS)) \
		$(if $(BENCH_TABLES),--tables $(BENCH_TABLES))

# Where the port services' config accesses come from, by caller, on the
# mainline target's base and series (scripts/cfg-callers.py).
bench-callers: mainline-kernels initramfs
	@$(PY) scripts/cfg-callers.py --base $(ML_BASE_IMG) --series $(ML_SERIES_IMG) \
		--initrd $(INITRD) --out $(BUILD)/bench --title 7.3:

clean:
	rm -rf $(BUILD)/linux/.obj-* $(BUILD)/linux-base/.obj-* $(BUILD)/initramfs* \
		$(BUILD)/logs $(BUILD)/bench
