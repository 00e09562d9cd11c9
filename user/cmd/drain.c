// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift drain */
#include <stdio.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift drain SERVICE NAME [--timeout DURATION]\n"
	"\n"
	"Drain a backend: its weight becomes 0 at once, so it gets no new connections,\n"
	"while its established connections continue. With --timeout (30s, 500ms, 5m,\n"
	"1h; at most 7 days) the connections still open at the deadline are closed by\n"
	"the data plane itself, no daemon needed: the next packet of such a connection,\n"
	"from either side, is turned into a TCP RST to the client, which can reconnect\n"
	"at once (to another backend); a RST from the client still reaches the backend.\n"
	"They are counted as drain_closed. An idle connection is closed when it next\n"
	"sends. Giving the backend a weight again ('tcpshift weight') ends the drain.\n"
	"\n"
	"Examples:\n"
	"  tcpshift drain tcp-echo v1\n"
	"  tcpshift drain tcp-echo v1 --timeout 30s\n";

int cmd_drain(struct cli_ctx *ctx, int argc, char **argv)
{
	__u64 timeout_ns = 0;
	const struct cli_opt opts[] = {
		{ "timeout", 0, CLI_DURATION, &timeout_ns },
		CLI_OPT_HELP,
		{},
	};
	struct ts_maps m;
	struct ts_err err;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs != 2)
		return cli_usage(argv[0], "drain takes SERVICE NAME");
	r = cli_open_maps(ctx, &m);
	if (r)
		return r;
	r = ts_backend_drain(&m, argv[1], argv[2], timeout_ns, &err);
	ts_maps_close(&m);
	return r ? cli_report(&err) : 0;
}
