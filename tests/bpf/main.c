// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_bpf: the real tcpshift BPF object under BPF_PROG_TEST_RUN.
 *
 *   test_bpf [--xdp|--xdp-handshakes] [GROUP...]  groups: pkt nat pinning handsoff split fuzz robust pick migrate
 *                                icmp security canary forward spoofing sync offpath
 *                                (default: all)
 *
 * --xdp: every packet goes through the XDP program first (ts_test.h,
 * test_xdp_mode), as on a gateway loaded with --mode xdp. --xdp-handshakes:
 * the same with --handshakes xdp, and neighbours for the clients and
 * backends, so that XDP forwards what it can (test_xdp_handshakes).
 *
 * Needs root (BPF, bpffs). Each test loads the object with its maps pinned in
 * its own directory /sys/fs/bpf/tcpshift-test-<pid>, and removes it after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "ts_test.h"

int run_fuzz_tests(void);	/* test_fuzz.c */

static const struct {
	const char *name;
	int (*run)(void);
} groups[] = {
	{ "pkt", run_pkt_tests },
	{ "nat", run_nat_tests },
	{ "pinning", run_pinning_tests },
	{ "handsoff", run_handsoff_tests },
	{ "split", run_split_tests },
	{ "fuzz", run_fuzz_tests },
	{ "robust", run_robust_tests },
	{ "pick", run_pick_tests },
	{ "icmp", run_icmp_tests },
	{ "security", run_security_tests },
	{ "canary", run_canary_tests },
	{ "forward", run_forward_tests },
	{ "spoofing", run_spoofing_tests },
	{ "sync", run_sync_tests },
	{ "offpath", run_offpath_tests },
	{ "migrate", run_migrate_tests },
};

static bool wanted(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct ts_err err = {};
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* the test instances' changes go in no journal (/var/lib/tcpshift) */
	setenv(TS_STATE_DIR_ENV, "", 1);
	if (argc > 1 && (!strcmp(argv[1], "--xdp") || !strcmp(argv[1], "--xdp-handshakes"))) {
		test_xdp_mode = true;
		test_xdp_handshakes = !strcmp(argv[1], "--xdp-handshakes");
		argv[1] = argv[0];
		argv++;
		argc--;
		printf("test_bpf: every packet through the XDP program first (--mode xdp%s)\n",
		       test_xdp_handshakes ? " --handshakes xdp" : "");
	}
	for (int i = 1; i < argc; i++) {
		bool known = false;

		for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
			known |= !strcmp(argv[i], groups[g].name);
		if (!known) {
			/* the names from the table: a group added is listed */
			fprintf(stderr, "test_bpf: unknown group '%s': give", argv[i]);
			for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
				fprintf(stderr, " %s", groups[g].name);
			fprintf(stderr, "\n");
			return 2;
		}
	}
	if (ts_check_root(&err)) {
		fprintf(stderr, "test_bpf: %s\n", err.msg);
		return 1;
	}
	if (ts_check_bpffs(TEST_BPFFS, NULL) &&
	    mount("bpf", TEST_BPFFS, "bpf", 0, "mode=0700")) {
		fprintf(stderr, "test_bpf: cannot mount bpffs on %s: %s\n", TEST_BPFFS,
			strerror(errno));
		return 1;
	}
	if (test_net_setup() || (test_xdp_handshakes && test_neighbours_add()))
		return 1;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
		if (wanted(groups[g].name, argc, argv))
			failed += groups[g].run();
	return failed ? 1 : 0;
}
