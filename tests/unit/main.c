// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The unit test layer: userspace logic only, no BPF, no root (the option
 * parser of the CLI included: user/cli.o).
 *
 * usage: test_unit [PATTERN]   run only the tests whose name matches PATTERN
 *                              (cmocka's filter: '*' and '?' wildcards)
 */
#include <stdio.h>
#include <string.h>

#include "unit.h"

int main(int argc, char **argv)
{
	int failed = 0;

	if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
		fprintf(stderr, "usage: %s [PATTERN]\n", argv[0]);
		return argc > 2 ? 2 : 0;
	}
	if (argc == 2)
		cmocka_set_test_filter(argv[1]);
	failed += run_parse_tests();
	failed += run_maglev_tests();
	failed += run_hash_tests();
	failed += run_export_tests();
	failed += run_cli_tests();
	failed += run_layout_tests();
	failed += run_health_tests();
	failed += run_metrics_tests();
	failed += run_etcd_tests();
	failed += run_sync_tests();
	failed += run_print_tests();
	failed += run_live_tests();
	return failed ? 1 : 0;
}
