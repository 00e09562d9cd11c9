// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift health */
#include <stdio.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift health SERVICE --check tcp|none [--interval D] [--timeout D]\n"
	"                       [--rise N] [--fall N]\n"
	"\n"
	"Health checks of a service's backends, run by 'tcpshift agent': every interval\n"
	"the agent connects to each backend's address:port (TCP, from the gateway); a\n"
	"connection not established within the timeout is a failure. FALL failures in a\n"
	"row mark a backend down, RISE successes up again. A backend that is down gets\n"
	"an effective weight 0 through an atomic table switch: no new connections, its\n"
	"established ones continue. Its weight, as the operator set it, is kept ('service\n"
	"list' shows it) and is back in force when it is up again. When every backend\n"
	"with a weight is down, the checks are taken to be wrong and the weights stay\n"
	"(fail open).\n"
	"\n"
	"  --check tcp|none  tcp: check; none: no checks, and every backend is up again\n"
	"  --interval D      time between checks (default 2s; 100ms-1h)\n"
	"  --timeout D       time a connect may take (default 1s; at most the interval)\n"
	"  --rise N          successes in a row that mark a backend up (default 2; 1-100)\n"
	"  --fall N          failures in a row that mark a backend down (default 3; 1-100)\n"
	"\n"
	"Options not given take their defaults (not their previous values). The checks\n"
	"are stored with the service: 'export' and 'import' carry them.\n"
	"\n"
	"Examples:\n"
	"  tcpshift health web --check tcp\n"
	"  tcpshift health web --check tcp --interval 1s --timeout 500ms --rise 2 --fall 2\n"
	"  tcpshift health web --check none\n";

static const char *const check_kinds[] = { "none", "tcp", NULL };

int cmd_health(struct cli_ctx *ctx, int argc, char **argv)
{
	__u64 interval_ns = TS_HEALTH_DEFAULT_INTERVAL_MS * 1000000ULL;
	__u64 timeout_ns = TS_HEALTH_DEFAULT_TIMEOUT_MS * 1000000ULL;
	__u32 rise = TS_HEALTH_DEFAULT_RISE, fall = TS_HEALTH_DEFAULT_FALL;
	bool check_given = false, interval_given = false, timeout_given = false;
	bool rise_given = false, fall_given = false;
	int check = TS_CHECK_NONE;
	const struct cli_opt opts[] = {
		{ "check", 0, CLI_ENUM, &check, &check_given, .metavar = "tcp or none",
		  .choices = check_kinds },
		{ "interval", 0, CLI_DURATION, &interval_ns, &interval_given },
		{ "timeout", 0, CLI_DURATION, &timeout_ns, &timeout_given },
		{ "rise", 0, CLI_U32, &rise, &rise_given, .metavar = "--rise", .min = 1,
		  .max = TS_HEALTH_MAX_COUNT },
		{ "fall", 0, CLI_U32, &fall, &fall_given, .metavar = "--fall", .min = 1,
		  .max = TS_HEALTH_MAX_COUNT },
		CLI_OPT_HELP,
		{},
	};
	struct ts_health_check hc = {};
	struct ts_maps m;
	struct ts_err err;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs != 1)
		return cli_usage(argv[0], "health takes SERVICE");
	if (!check_given)
		return cli_usage(argv[0], "give --check tcp or --check none");
	if (check == TS_CHECK_NONE) {
		if (interval_given || timeout_given || rise_given || fall_given)
			return cli_usage(argv[0], "--check none takes no other option");
	} else {
		if (interval_ns % 1000000 || timeout_ns % 1000000)
			return cli_usage(argv[0], "give --interval and --timeout in whole ms");
		hc = (struct ts_health_check){
			.check = TS_CHECK_TCP,
			.interval_ms = (__u32)(interval_ns / 1000000 > 0xffffffffULL
						       ? 0xffffffffULL
						       : interval_ns / 1000000),
			.timeout_ms = (__u32)(timeout_ns / 1000000 > 0xffffffffULL
						      ? 0xffffffffULL
						      : timeout_ns / 1000000),
			.rise = (__u8)rise,
			.fall = (__u8)fall,
		};
	}
	if (ts_health_check_valid(&hc, &err))
		return cli_report(&err);

	r = cli_open_maps(ctx, &m);
	if (r)
		return r;
	r = ts_health_set(&m, argv[1], &hc, &err);
	ts_maps_close(&m);
	return r ? cli_report(&err) : 0;
}
