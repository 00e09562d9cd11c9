// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift load */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift load --dev IFACE [--dev IFACE...] [--max-flows N] [--seed N]\n"
	"                     [--forward stack|fib]\n"
	"                     [--mode tc|xdp [--xdp-generic] [--handshakes tc|xdp]]\n"
	"                     [--cgroup PATH]\n"
	"\n"
	"Load the data plane, pin its maps under the pin directory and attach it to tc\n"
	"ingress of every IFACE: the interfaces where client packets to the VIPs and the\n"
	"backends' replies arrive. Mounts bpffs on /sys/fs/bpf if needed.\n"
	"\n"
	"Run again on a loaded gateway to upgrade in place: the pinned maps (services,\n"
	"weights, pinned flows) are reused and the programs replaced. The --dev list is\n"
	"the whole set: devices no longer named are detached. Maps of the previous\n"
	"layout (5) are migrated in place, flows kept; a newer layout is refused.\n"
	"\n"
	"An instance is its pin directory plus this network namespace. A device whose\n"
	"tcpshift tc slot (handle 0x75, priority 0x75) holds another instance's or\n"
	"another tool's filter is refused, never replaced. A load that fails leaves the\n"
	"state before it; one that is killed is completed by the next load or unload.\n"
	"\n"
	"  --dev IFACE      attach to IFACE (repeat for several)\n"
	"  --max-flows N    size of the flow table (default 262144; fixed while loaded);\n"
	"                   each flow costs about 432 bytes of kernel memory (the\n"
	"                   default: about 113 MB)\n"
	"  --seed N         flow hash seed, decimal or 0x hex (default 0x7c5f5eed);\n"
	"                   gateways behind one ECMP group need the same seed to pick\n"
	"                   the same backends\n"
	"  --forward MODE   stack (default): rewritten packets are routed by the kernel's\n"
	"                   stack (netfilter FORWARD sees them); fib: tcpshift forwards\n"
	"                   them itself after a FIB lookup, bypassing netfilter, falling\n"
	"                   back to the stack when the FIB cannot answer. Kept by an\n"
	"                   upgrade unless given again.\n"
	"  --mode MODE      tc (default): the program runs at tc ingress. xdp: an XDP\n"
	"                   program on every IFACE forwards the packets of established\n"
	"                   flows before the kernel builds an skb, and passes the rest\n"
	"                   (handshakes, ICMP, frames with partial checksums from senders\n"
	"                   on this host, anything unusual) to the tc program. Needs\n"
	"                   native XDP on every IFACE (veth, most 10G+ NICs; not bridges\n"
	"                   or bonds of drivers without it). Warns about a veth whose\n"
	"                   peer has no GRO (it takes no redirects: tc sends to it).\n"
	"                   Switched in place, keeping every flow; kept by an upgrade\n"
	"                   unless given again.\n"
	"  --xdp-generic    with --mode xdp: allow XDP in the stack (generic mode) on\n"
	"                   devices without native XDP; slower than --mode tc, for tests\n"
	"  --handshakes WHERE  with --mode xdp: tc (default): new connections go through\n"
	"                   tc and the stack, so netfilter judges each one. xdp: the XDP\n"
	"                   program also picks and pins SYNs and forwards the backends'\n"
	"                   SYN-ACKs and the confirming ACKs, so whole connections\n"
	"                   skip the stack and its netfilter rules (the same flow logic\n"
	"                   and defences; ICMP and anything unusual still go to tc).\n"
	"                   For gateways without a firewall of their own. Given again\n"
	"                   with every --mode xdp.\n"
	"  --cgroup PATH    balance the clients on this host too: TCP connect()s to a VIP\n"
	"                   by processes in the cgroup v2 directory PATH (and below it),\n"
	"                   in this network namespace, go to a backend picked from the\n"
	"                   same weighted table, with no NAT (getpeername still shows\n"
	"                   the VIP). Needs Linux 6.5 or later. Like --dev, it names the\n"
	"                   whole set: a load without --cgroup detaches it.\n"
	"\n"
	"Examples:\n"
	"  tcpshift load --dev eth0 --dev eth1\n"
	"  tcpshift load --dev eth0 --dev eth1 --mode xdp --handshakes xdp\n"
	"  tcpshift load --dev eth0 --cgroup /sys/fs/cgroup/unified/clients\n";

int cmd_load(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const forward_modes[] = { "stack", "fib", NULL };
	const char *devs[TS_MAX_DEVICES];
	static const char *const modes[] = { "tc", "xdp", NULL };
	static const char *const handshakes[] = { "tc", "xdp", NULL };
	int where = -1;
	struct ts_load_opts o = { .pin_dir = ctx->pin_dir, .devs = devs, .forward_fib = -1,
				  .mode = -1 };
	const struct cli_opt opts[] = {
		{ "dev", 'd', CLI_STRINGS, devs, .count = &o.ndevs, .max_count = TS_MAX_DEVICES },
		{ "max-flows", 0, CLI_U32, &o.max_flows, .metavar = "--max-flows", .min = 1024,
		  .max = 1U << 27 },
		/* decimal or 0x hex; a leading 0 is decimal, never octal */
		{ "seed", 0, CLI_SEED, &o.seed, &o.seed_set },
		{ "forward", 0, CLI_ENUM, &o.forward_fib, .metavar = "fib or stack",
		  .choices = forward_modes },
		{ "mode", 0, CLI_ENUM, &o.mode, .metavar = "tc or xdp", .choices = modes },
		{ "xdp-generic", 0, CLI_FLAG, &o.xdp_generic },
		{ "handshakes", 0, CLI_ENUM, &where, .metavar = "tc or xdp",
		  .choices = handshakes },
		{ "cgroup", 0, CLI_STRING, &o.cgroup },
		CLI_OPT_HELP,
		{},
	};
	struct ts_err err;
	int r;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	if (!o.ndevs)
		return cli_usage(argv[0], "give at least one --dev IFACE");
	if (o.xdp_generic && o.mode != TS_MODE_XDP)
		return cli_usage(argv[0], "--xdp-generic goes with --mode xdp");
	if (where >= 0 && o.mode != TS_MODE_XDP)
		return cli_usage(argv[0], "--handshakes goes with --mode xdp");
	o.handshakes = where == TS_HANDSHAKES_XDP ? TS_HANDSHAKES_XDP : TS_HANDSHAKES_TC;
	if (ts_load(&o, &err))
		return cli_report(&err);
	return 0;
}
