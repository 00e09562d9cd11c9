# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make          build build/tcpshift, the one-shot commands (BPF object embedded through a
#               libbpf skeleton), and build/tcpshiftd, the daemons (agent, sync, rollout)
# make deps     install the Debian packages that are missing (root)
# make test     unit, bpf and e2e tests; ends with "N passed, M failed"
# make demo     the traffic-shifting demo in network namespaces (INTERACTIVE=1 pauses)
# make fuzz     the parsers' libFuzzer target for FUZZ_SECONDS (make test runs it briefly)
# make bench    tcpshift against direct routing and peers; make microbench: ns/packet;
#               make bench-pps: packets per second through the gateway on one core;
#               make bench-conn: whole connections per second through it on one core;
#               make bench-scale: the cost of 1 to 65,536 services against iptables/nftables
# make install  both binaries, man page, bash completion and the systemd units under
#               $(DESTDIR)$(PREFIX)
# make deb      build/tcpshift_VERSION_ARCH.deb (dpkg-deb, no network)
# make release-tags  the tag v<version> of every release RELEASES lists
# V=1           print full commands

OUTPUT   := build
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= cc
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
PREFIX   ?= /usr/local
DESTDIR  ?=
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system

DEB_PACKAGES := clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 \
		libcmocka-dev libjson-c-dev pkg-config gcc make util-linux procps jq ethtool \
		man-db groff-base ncat libclang-rt-14-dev strace libmicrohttpd-dev prometheus \
		libcurl4-openssl-dev etcd-server etcd-client libssl-dev libsystemd-dev iptables systemd \
		chromium tmux nftables gnuplot-nox python3

CFLAGS   ?= -g -O2
CFLAGS   += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	    -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser/lib -I$(OUTPUT)
# the one-shot commands link these alone; the daemons' libraries are DAEMON_LIBS
LDLIBS   += -lbpf -lelf -lz -ljson-c
DAEMON_LIBS := -lmicrohttpd -lcurl -lcrypto -lsystemd -lpthread
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	      -I$(OUTPUT) -Iinclude -Ibpf

# user/lib: the library (libtcpshift.a); user/cmd: the one-shot commands
# (tcpshift); user/daemon: the daemons (tcpshiftd, and libtcpshiftd.a for tests)
LIB_SRCS    := $(wildcard user/lib/*.c)
CMD_SRCS    := $(wildcard user/cmd/*.c)
DAEMON_SRCS := $(filter-out user/daemon/main.c,$(wildcard user/daemon/*.c))
LIB_OBJS    := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(LIB_SRCS))
CMD_OBJS    := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(CMD_SRCS))
DAEMON_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(DAEMON_SRCS))
HEADERS     := $(wildcard include/*.h user/*/*.h)
BPF_HDRS := $(wildcard bpf/*.h include/*.h)
# the one version of this build: VERSION, with a git describe suffix off a release
VERSION_STR := $(shell tools/version.sh)

TEST_UNIT := $(OUTPUT)/tests/test_unit
TEST_BPF  := $(OUTPUT)/tests/test_bpf
TOOLS     := $(OUTPUT)/ts-echo $(OUTPUT)/ts-synctest $(OUTPUT)/ts-tables

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.PHONY: all deps test test-unit test-bpf test-e2e test-bpf-xdp test-e2e-xdp demo clean install uninstall format
.PHONY: release-tags deb
.PHONY: bench microbench bench-pps bench-conn bench-scale bench-startup

all: $(OUTPUT)/tcpshift $(OUTPUT)/tcpshiftd $(TOOLS)

# ---- dependencies ---------------------------------------------------------
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install:$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# ---- BPF object and skeleton ----------------------------------------------
$(OUTPUT) $(OUTPUT)/user/lib $(OUTPUT)/user/cmd $(OUTPUT)/user/daemon $(OUTPUT)/tests:
	$(Q)mkdir -p $@

# vmlinux.h is regenerated every build but replaced only when it changed.
$(OUTPUT)/vmlinux.h: FORCE | $(OUTPUT)
	$(Q)tmp=$@.$$$$.tmp; $(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $$tmp && \
	if cmp -s $$tmp $@; then rm -f $$tmp; else mv $$tmp $@; echo "  GEN      $@"; fi

$(OUTPUT)/tcpshift.bpf.o: bpf/tcpshift.bpf.c $(BPF_HDRS) $(OUTPUT)/vmlinux.h | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $(@:.o=.tmp.o)
	$(Q)$(BPFTOOL) gen object $@ $(@:.o=.tmp.o)
	$(Q)rm -f $(@:.o=.tmp.o)

$(OUTPUT)/tcpshift.skel.h: $(OUTPUT)/tcpshift.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name tcpshift_bpf > $@

# ---- userspace -------------------------------------------------------------
# version.h is rewritten only when the version changed
$(OUTPUT)/version.h: FORCE | $(OUTPUT)
	$(Q)tmp=$@.$$$$.tmp; printf '#define TS_VERSION "%s"\n' '$(VERSION_STR)' > $$tmp && \
	if cmp -s $$tmp $@; then rm -f $$tmp; else mv $$tmp $@; echo "  GEN      $@"; fi

$(OUTPUT)/user/lib/version.o: $(OUTPUT)/version.h

$(OUTPUT)/user/lib/%.o: user/lib/%.c $(HEADERS) $(OUTPUT)/tcpshift.skel.h | $(OUTPUT)/user/lib
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The pinned maps' layouts, read from the object once, at build time: layout.c
# includes them, so opening the maps needs no parse of the object.
$(OUTPUT)/gen-layouts: tools/gen-layouts.c $(OUTPUT)/user/lib/layout_object.o \
		$(OUTPUT)/user/lib/parse.o | $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/layouts.h: $(OUTPUT)/gen-layouts
	$(call msg,GEN,$@)
	$(Q)$< >$@.tmp && mv $@.tmp $@

$(OUTPUT)/user/lib/layout.o: $(OUTPUT)/layouts.h

$(OUTPUT)/user/cmd/%.o: user/cmd/%.c $(HEADERS) $(OUTPUT)/tcpshift.skel.h | $(OUTPUT)/user/cmd
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUTPUT)/user/daemon/%.o: user/daemon/%.c $(HEADERS) $(OUTPUT)/tcpshift.skel.h \
		| $(OUTPUT)/user/daemon
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The status page, one document, as a C string (page.c): each line quoted,
# backslashes and quotes escaped.
$(OUTPUT)/status_page.h: user/daemon/status.html | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q){ echo '/* generated from user/daemon/status.html: do not edit */'; \
	  echo 'static const char ts_status_page[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@

$(OUTPUT)/user/daemon/page.o: $(OUTPUT)/status_page.h

# made afresh: a member whose source is gone must not stay behind
$(OUTPUT)/libtcpshift.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(OUTPUT)/libtcpshiftd.a: $(DAEMON_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(OUTPUT)/tcpshift: $(CMD_OBJS) $(OUTPUT)/libtcpshift.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/tcpshiftd: $(OUTPUT)/user/daemon/main.o $(OUTPUT)/libtcpshiftd.a $(OUTPUT)/libtcpshift.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) $(DAEMON_LIBS) -o $@

$(OUTPUT)/ts-echo: tools/ts-echo.c | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

# the scale test's helper: a hash of every service's table, read from the pins
$(OUTPUT)/ts-tables: tools/ts-tables.c | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< $(LDLIBS) -o $@

# the sync tests' helper: fills flow tables, sends crafted sync messages
$(OUTPUT)/ts-synctest: tools/ts-synctest.c $(OUTPUT)/libtcpshiftd.a $(OUTPUT)/libtcpshift.a \
		| $(OUTPUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/daemon $^ $(LDLIBS) $(DAEMON_LIBS) -o $@

# ---- tests -----------------------------------------------------------------
$(TEST_UNIT): $(wildcard tests/unit/*.c tests/unit/*.h) $(OUTPUT)/libtcpshiftd.a \
		$(OUTPUT)/libtcpshift.a | $(OUTPUT)/tests
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/daemon $(filter %.c,$^) $(OUTPUT)/libtcpshiftd.a \
		$(OUTPUT)/libtcpshift.a $(LDLIBS) $(DAEMON_LIBS) -lcmocka -o $@

$(TEST_BPF): $(wildcard tests/bpf/*.c tests/bpf/*.h) $(OUTPUT)/libtcpshiftd.a $(OUTPUT)/libtcpshift.a \
		| $(OUTPUT)/tests
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/bpf -Iuser/daemon $(filter %.c,$^) $(OUTPUT)/libtcpshiftd.a \
		$(OUTPUT)/libtcpshift.a $(LDLIBS) $(DAEMON_LIBS) -lcmocka -o $@

# $(PPS): tests/e2e/test_pps.sh runs make bench-pps's harness on a tiny round;
# $(MICROBENCH): tests/e2e/test_bench_scale.sh runs make bench-scale's at 1 and 100 services
test: deps
	$(Q)$(MAKE) --no-print-directory all $(TEST_UNIT) $(TEST_BPF) $(FUZZ_PARSE) $(PPS) $(MICROBENCH)
	$(Q)tests/run.sh

test-unit test-bpf test-e2e test-bpf-xdp test-e2e-xdp: deps
	$(Q)$(MAKE) --no-print-directory all $(TEST_UNIT) $(TEST_BPF) $(FUZZ_PARSE) $(PPS) $(MICROBENCH)
	$(Q)tests/run.sh $(@:test-%=%)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)INTERACTIVE=$(INTERACTIVE) tools/demo.sh

install: all
	install -D -m 0755 $(OUTPUT)/tcpshift $(DESTDIR)$(PREFIX)/sbin/tcpshift
	install -D -m 0755 $(OUTPUT)/tcpshiftd $(DESTDIR)$(PREFIX)/sbin/tcpshiftd
	install -D -m 0644 doc/tcpshift.8 $(DESTDIR)$(PREFIX)/share/man/man8/tcpshift.8
	install -D -m 0644 contrib/bash-completion/tcpshift \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/tcpshift
	install -D -m 0644 contrib/systemd/tcpshift.conf \
		$(DESTDIR)$(PREFIX)/share/doc/tcpshift/tcpshift.conf.example
	for u in tcpshift-agent tcpshift-sync tcpshift-boot; do \
		sed 's|@SBINDIR@|$(PREFIX)/sbin|' contrib/systemd/$$u.service >$(OUTPUT)/$$u.service && \
		install -D -m 0644 $(OUTPUT)/$$u.service $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$u.service || \
		exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/tcpshift $(DESTDIR)$(PREFIX)/sbin/tcpshiftd $(DESTDIR)$(PREFIX)/share/man/man8/tcpshift.8 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/tcpshift \
		$(DESTDIR)$(PREFIX)/share/doc/tcpshift/tcpshift.conf.example \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tcpshift-agent.service \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tcpshift-sync.service \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/tcpshift-boot.service

# ---- Debian package ----------------------------------------------------------
# build/tcpshift_VERSION_ARCH.deb from make install into a staging root, with
# contrib/debian's control and maintainer scripts; dpkg-deb only, no network.
DEB_ROOT := $(OUTPUT)/deb
DEB_FILE = $(OUTPUT)/tcpshift_$(shell tools/version.sh --deb)_$(shell dpkg --print-architecture).deb
deb: all
	$(Q)rm -rf $(DEB_ROOT) $(OUTPUT)/tcpshift_*.deb
	$(Q)$(MAKE) --no-print-directory install DESTDIR=$(abspath $(DEB_ROOT)) PREFIX=/usr \
		SYSTEMD_UNIT_DIR=/usr/lib/systemd/system >/dev/null
	$(Q)gzip -9n $(DEB_ROOT)/usr/share/man/man8/tcpshift.8
	$(Q)install -m 0644 CHANGELOG.md $(DEB_ROOT)/usr/share/doc/tcpshift/CHANGELOG.md
	$(Q)mkdir -p $(DEB_ROOT)/DEBIAN
	$(Q)install -m 0755 contrib/debian/postinst contrib/debian/postrm $(DEB_ROOT)/DEBIAN/
	$(Q)sed -e 's/@VERSION@/$(shell tools/version.sh --deb)/' \
		-e "s/@ARCH@/$$(dpkg --print-architecture)/" \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)/" \
		contrib/debian/control.in >$(DEB_ROOT)/DEBIAN/control
	$(call msg,DEB,$(DEB_FILE))
	$(Q)dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB_FILE) >/dev/null

# the tag v<version> of each release RELEASES lists (tags may not travel with a clone)
release-tags:
	$(Q)awk '$$1 !~ /^#/ && NF >= 2 { print $$1, $$2 }' RELEASES | while read -r v c; do \
		git rev-parse -q --verify "refs/tags/v$$v" >/dev/null && continue; \
		git tag -a -m "tcpshift $$v" "v$$v" "$$c" && echo "  TAG      v$$v $$c" || exit 1; \
	done

format:
	clang-format -i bpf/*.c bpf/*.h include/*.h user/*/*.c user/*/*.h tests/*/*.c tools/*.c

clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT)

# ---- fuzzing -----------------------------------------------------------------
# The parsers built from source with the sanitizers (not from libtcpshift.a),
# so that AddressSanitizer and UBSan see their code. `make fuzz` runs the
# target for FUZZ_SECONDS, keeping what it learns in $(OUTPUT)/fuzz/corpus
# (seeded from tests/fuzz/corpus) and any crash in $(OUTPUT)/fuzz/.
FUZZ_PARSE   := $(OUTPUT)/tests/fuzz_parse
FUZZ_SECONDS ?= 300
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser/lib \
		-Iuser/daemon

.PHONY: fuzz
# The parsers are pure: the target links them alone, no libbpf.
FUZZ_SRCS    := tests/fuzz/fuzz_parse.c user/lib/parse.c user/lib/doc.c user/daemon/etcd.c
$(FUZZ_PARSE): $(FUZZ_SRCS) $(HEADERS) | $(OUTPUT)/tests
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $(filter %.c,$^) -ljson-c -o $@

fuzz: deps
	$(Q)$(MAKE) --no-print-directory $(FUZZ_PARSE)
	$(Q)mkdir -p $(OUTPUT)/fuzz/corpus
	$(Q)$(FUZZ_PARSE) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
		-dict=tests/fuzz/fuzz_parse.dict -artifact_prefix=$(OUTPUT)/fuzz/ \
		$(OUTPUT)/fuzz/corpus tests/fuzz/corpus

# ---- benchmarks (tools/bench, BENCHMARKS.md) ----------------------------------
# make microbench   ns/packet under BPF_PROG_TEST_RUN, weight change time, flow
#                   dump time and map memory: build/bench/microbench.{md,json};
#                   MICROBENCH_ARGS=conn: ns of each of a whole connection's seven
#                   segments through the XDP program with --handshakes xdp (stdout)
# make bench        tcpshift against direct routing, iptables, nftables, HAProxy
#                   and nginx in network namespaces (ROUNDS=2): build/bench/;
#                   then a client on the gateway itself: the socket path
#                   (load --cgroup) against iptables DNAT (tools/bench/local.sh)
# Both need root. Speed is never asserted by make test.
BENCH_OUT  := $(OUTPUT)/bench
MICROBENCH := $(BENCH_OUT)/microbench
BENCH_BPF  := $(BENCH_OUT)/empty.skel.h $(BENCH_OUT)/prims.skel.h
MICROBENCH_ARGS ?=

$(BENCH_OUT):
	$(Q)mkdir -p $@

$(BENCH_OUT)/%.bpf.o: tools/bench/%.bpf.c $(wildcard include/*.h) $(OUTPUT)/vmlinux.h | $(BENCH_OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $(@:.o=.tmp.o)
	$(Q)$(BPFTOOL) gen object $@ $(@:.o=.tmp.o)
	$(Q)rm -f $(@:.o=.tmp.o)

$(BENCH_OUT)/%.skel.h: $(BENCH_OUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name bench_$* > $@

$(MICROBENCH): tools/bench/microbench.c tests/bpf/pkt.c tests/bpf/pkt.h $(BENCH_BPF) \
		$(OUTPUT)/libtcpshift.a | $(BENCH_OUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/bpf -I$(BENCH_OUT) $(filter %.c,$^) $(OUTPUT)/libtcpshift.a \
		$(LDLIBS) -o $@

$(BENCH_OUT)/follow: tools/bench/follow.c tools/bench/endpoint.h | $(BENCH_OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

$(BENCH_OUT)/rr: tools/bench/rr.c tools/bench/endpoint.h | $(BENCH_OUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

microbench: deps
	$(Q)$(MAKE) --no-print-directory all $(MICROBENCH)
	$(Q)$(MICROBENCH) --out $(BENCH_OUT) --tcpshift $(OUTPUT)/tcpshift $(MICROBENCH_ARGS)

bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BENCH_OUT)/follow $(BENCH_OUT)/rr
	$(Q)ROUNDS=$(or $(ROUNDS),2) tools/bench/bench.sh
	$(Q)ROUNDS=$(or $(ROUNDS),2) tools/bench/local.sh

# make bench-pps    packets per second through the gateway on one core, every
#                   method side by side (tools/bench/pps.sh: ~4 min; QUICK=1 in
#                   under a minute; ROUNDS, SECONDS_PER_PHASE, CPU, METHODS)
PPS := $(BENCH_OUT)/pps

$(BENCH_OUT)/pps.bpf.o: tools/bench/pps.h

$(PPS): tools/bench/pps.c tools/bench/pps.h tests/bpf/pkt.c tests/bpf/pkt.h \
		$(BENCH_OUT)/pps.skel.h $(OUTPUT)/libtcpshift.a | $(BENCH_OUT)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -Itools/bench -Itests/bpf -I$(BENCH_OUT) $(filter %.c,$^) \
		$(OUTPUT)/libtcpshift.a $(LDLIBS) -o $@

bench-pps: deps
	$(Q)$(MAKE) --no-print-directory all $(PPS) $(BENCH_OUT)/empty.bpf.o
	$(Q)QUICK=$(QUICK) ROUNDS=$(ROUNDS) SECONDS_PER_PHASE=$(SECONDS_PER_PHASE) CPU=$(CPU) \
		METHODS="$(METHODS)" tools/bench/pps.sh

# make bench-conn   whole connections per second through the gateway on one core
#                   (handshake, request, response, FINs both ways, answered at XDP:
#                   no TCP stack at either end): bench-pps's harness, phase conn
#                   alone, for tcpshift tc/fib/xdp/xdp-hs, iptables and nftables
#                   (and plain forwarding and XDP redirect as ceilings):
#                   build/bench/conn.{md,png}, conn-raw.tsv
CONN_METHODS := forward xdp-redirect iptables nftables tcpshift tcpshift-fib tcpshift-xdp \
		tcpshift-xdp-hs

bench-conn: deps
	$(Q)$(MAKE) --no-print-directory all $(PPS) $(BENCH_OUT)/empty.bpf.o
	$(Q)QUICK=$(QUICK) ROUNDS=$(ROUNDS) SECONDS_PER_PHASE=$(SECONDS_PER_PHASE) CPU=$(CPU) \
		METHODS="$(or $(METHODS),$(CONN_METHODS))" PHASES=conn REPORT=conn tools/bench/pps.sh

# make bench-scale  1, 1,000, 10,000 and 65,536 services (those within this build's
#                   TS_MAX_SERVICES): tcpshift tc and xdp, iptables DNAT in kube-proxy's
#                   style, nftables with a verdict map; SYN and established ns per
#                   packet, whole-config load and one weight change (tools/bench/scale.sh;
#                   SIZES, METHODS, CPU): build/bench/scale.md, scale-*.png
bench-scale: deps
	$(Q)$(MAKE) --no-print-directory all $(PPS) $(MICROBENCH)
	$(Q)SIZES="$(SIZES)" METHODS="$(METHODS)" CPU=$(CPU) tools/bench/scale.sh

# make bench-startup   the one-shot commands' start-to-exit time, this build against
#                     BASE (a commit) side by side (tools/bench/startup.sh)
bench-startup: deps
	$(Q)BASE=$(BASE) RUNS=$(RUNS) tools/bench/startup.sh

FORCE:
