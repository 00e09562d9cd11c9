// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift load */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
	"Usage: tcpshift load --dev IFACE [--dev IFACE...] [--max-flows N] [--seed N]\n"
	"                     [--forward stack|fib]\n"
	"\n"
	"Load the data plane, pin its maps under the pin directory and attach it to tc\n"
	"ingress of every IFACE: the interfaces where client packets to the VIPs and the\n"
	"backends' replies arrive. Mounts bpffs on /sys/fs/bpf if needed.\n"
	"\n"
	"Run again on a loaded gateway to upgrade in place: the pinned maps (services,\n"
	"weights, pinned flows) are reused and the programs replaced. The --dev list is\n"
	"the whole set: devices no longer named are detached.\n"
	"\n"
	"  --dev IFACE      attach to IFACE (repeat for several)\n"
	"  --max-flows N    size of the flow table (default 262144; fixed while loaded);\n"
	"                   each flow costs about 170 bytes of kernel memory (the\n"
	"                   default: about 45 MB)\n"
	"  --seed N         flow hash seed, decimal or 0x hex (default 0x7c5f5eed);\n"
	"                   gateways behind one ECMP group need the same seed to pick\n"
	"                   the same backends\n"
	"  --forward MODE   stack (default): rewritten packets are routed by the kernel's\n"
	"                   stack (netfilter FORWARD sees them); fib: tcpshift forwards\n"
	"                   them itself after a FIB lookup, bypassing netfilter, falling\n"
	"                   back to the stack when the FIB cannot answer. Kept by an\n"
	"                   upgrade unless given again.\n"
	"\n"
	"Example:\n"
	"  tcpshift load --dev eth0 --dev eth1\n";

int cmd_load(struct ts_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "max-flows", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "forward", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *devs[TS_MAX_DEVICES];
	struct ts_load_opts o = { .pin_dir = ctx->pin_dir, .devs = devs, .forward_fib = -1 };
	struct ts_err err;
	int c;

	while ((c = cli_getopt(argc, argv, "d:h", opts, help)) != -1) {
		switch (c) {
		case 'd':
			if (o.ndevs == TS_MAX_DEVICES)
				return cli_usage(argv[0], "at most %d devices", TS_MAX_DEVICES);
			devs[o.ndevs++] = optarg;
			break;
		case 'm':
			if (ts_parse_u32(optarg, "--max-flows", 1024, 1U << 27, &o.max_flows, &err))
				return cli_report(&err);
			break;
		case 's':
			/* decimal or 0x hex; a leading 0 is decimal, never octal */
			if (ts_parse_seed(optarg, &o.seed))
				return cli_usage(argv[0],
						 "--seed '%s' is not a 32-bit number: give decimal "
						 "or 0x hex",
						 optarg);
			o.seed_set = true;
			break;
		case 'f':
			if (strcmp(optarg, "fib") && strcmp(optarg, "stack"))
				return cli_usage(argv[0], "--forward '%s': give fib or stack",
						 optarg);
			o.forward_fib = !strcmp(optarg, "fib");
			break;
		case CLI_HELP_DONE:
			return 0;
		default:
			return TS_ERR_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(argv[0], "unexpected argument '%s'", argv[optind]);
	if (!o.ndevs)
		return cli_usage(argv[0], "give at least one --dev IFACE");
	if (ts_load(&o, &err))
		return cli_report(&err);
	return 0;
}
