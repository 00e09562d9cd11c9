/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The daemons of tcpshiftd (agent, sync, rollout) and what they share: log
 * lines, socket addresses, and the metrics endpoint (runtime.c). */
#ifndef TCPSHIFT_DAEMON_H
#define TCPSHIFT_DAEMON_H

#include <stdarg.h>
#include <sys/socket.h>
#include "cli.h"

struct MHD_Daemon;

/* One line on stderr: "tcpshift WHO: <UTC time> <message>". */
void ts_log(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_vlog(const char *who, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* An address:port as a socket address; returns its length. */
socklen_t ts_sockaddr_of(__u8 family, const __be32 addr[4], __be16 port,
			 struct sockaddr_storage *ss);
/* ... and back; false for another family. */
bool ts_endpoint_of(const struct sockaddr_storage *ss, struct ts_endpoint *ep);

/* The metrics endpoint: a listening socket of ours at spec ADDR:PORT (so that
 * an address in use is a clear error, TS_ERR_USAGE), then an HTTP server
 * thread answering GET /metrics with collect(cls)'s text (malloc'd; NULL: an
 * error 500). The server takes lfd; -1 when it cannot start. */
int ts_metrics_listen(const char *spec, struct ts_err *err);
struct ts_metrics_server {
	char		*(*collect)(void *cls, size_t *len);
	void		*cls;
	struct MHD_Daemon *httpd;
};
int ts_metrics_serve(struct ts_metrics_server *s, int lfd);
void ts_metrics_stop(struct ts_metrics_server *s);

/* The daemons: each returns the exit status, as a one-shot command does. */
int cmd_agent(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sync(struct cli_ctx *ctx, int argc, char **argv);
int cmd_rollout(struct cli_ctx *ctx, int argc, char **argv);

#endif /* TCPSHIFT_DAEMON_H */
