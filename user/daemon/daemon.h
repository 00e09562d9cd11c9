/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The daemons of tcpshiftd (agent, sync, rollout) and what they share: log
 * lines, socket addresses, and the metrics endpoint (runtime.c). */
#ifndef TCPSHIFT_DAEMON_H
#define TCPSHIFT_DAEMON_H

#include <stdarg.h>
#include <sys/socket.h>
#include "cli.h"

struct MHD_Daemon;

/* ---- loop.c: the one event loop of every daemon --------------------------------
 *
 * epoll over a signalfd (SIGTERM and SIGINT stop the loop, SIGHUP calls the
 * reload callback or, without one, stops it too), timerfds and the daemon's own descriptors; systemd's
 * READY=1 when the daemon says so, WATCHDOG=1 from the loop itself at half of
 * WatchdogSec= (a stalled loop gets the daemon restarted). Create the loop
 * before any thread: the threads inherit the blocked signals.
 */
struct ts_loop;
struct ts_timer;
typedef void (*ts_loop_fd_cb)(struct ts_loop *l, int fd, __u32 events, void *data);
typedef void (*ts_loop_cb)(struct ts_loop *l, void *data);

int ts_loop_new(struct ts_loop **out, const char *who, struct ts_err *err);
/* Call cb(fd's epoll events) while fd is watched. */
int ts_loop_watch(struct ts_loop *l, int fd, __u32 events, ts_loop_fd_cb cb, void *data,
		  struct ts_err *err);
void ts_loop_unwatch(struct ts_loop *l, int fd);
/* A timer, disarmed until armed: first_ns from now, then every interval_ns
 * (0: once); or once at CLOCK_MONOTONIC mono_ns. Expirations missed while
 * the loop was busy call cb once. */
int ts_loop_timer(struct ts_loop *l, ts_loop_cb cb, void *data, struct ts_timer **out,
		  struct ts_err *err);
void ts_timer_arm(struct ts_timer *t, __u64 first_ns, __u64 interval_ns);
void ts_timer_at(struct ts_timer *t, __u64 mono_ns);
void ts_timer_disarm(struct ts_timer *t);
void ts_timer_free(struct ts_timer *t);
void ts_loop_on_reload(struct ts_loop *l, ts_loop_cb cb, void *data);
/* READY=1 and a STATUS= line for systemd (nothing without a notify socket). */
void ts_loop_ready(struct ts_loop *l, const char *status);
/* Run until ts_loop_stop or a stopping signal; returns the status given to
 * ts_loop_stop (0 after a signal). */
int ts_loop_run(struct ts_loop *l);
/* Run until CLOCK_MONOTONIC until_ns: true then, false when stopped before. */
bool ts_loop_run_until(struct ts_loop *l, __u64 until_ns);
void ts_loop_stop(struct ts_loop *l, int status);
bool ts_loop_stopped(const struct ts_loop *l);
/* The signal that stopped the loop (SIGTERM, SIGINT; SIGHUP when there is no
 * reload callback), or 0. */
int ts_loop_signal(const struct ts_loop *l);
void ts_loop_free(struct ts_loop *l);

/* ---- runtime.c: log lines, socket addresses, the metrics endpoint ---------- */

/* One line on stderr: "tcpshift WHO: <UTC time> <message>". */
void ts_log(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ts_vlog(const char *who, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* An address:port as a socket address; returns its length. */
socklen_t ts_sockaddr_of(__u8 family, const __be32 addr[4], __be16 port,
			 struct sockaddr_storage *ss);
/* ... and back; false for another family. */
bool ts_endpoint_of(const struct sockaddr_storage *ss, struct ts_endpoint *ep);

/* The metrics endpoint: a listening socket of ours at spec ADDR:PORT (so that
 * an address in use is a clear error, TS_ERR_BUSY), then an HTTP server
 * thread answering GET /metrics with collect(cls, query)'s text (malloc'd;
 * NULL: an error 500) and, when status is set (the agent), GET / with the status page
 * and GET /api/status?since=SEQ with status(cls, SEQ)'s JSON. The server
 * takes lfd; -1 when it cannot start. */
int ts_metrics_listen(const char *spec, struct ts_err *err);
#define TS_HTTP_MAX_CONNS		64
#define TS_HTTP_MAX_CONNS_PER_CLIENT	8
#define TS_HTTP_IDLE_S			5	/* without progress: closed */
/* GET /metrics?service=NAME&service=NAME...: the services asked for (the
 * agent's per-backend series of those alone); more, or an empty name, is a
 * 400. */
#define TS_METRICS_MAX_SELECTED	16
struct ts_metrics_query {
	const char	*services[TS_METRICS_MAX_SELECTED];
	size_t		nservices;
};
struct ts_metrics_server {
	/* the text, with HTTP status *code: 200 unless collect sets another
	 * (its text then says why) */
	char		*(*collect)(void *cls, const struct ts_metrics_query *q,
				    unsigned int *code, size_t *len);
	char		*(*status)(void *cls, __u64 since, size_t *len);	/* or NULL */
	void		*cls;
	struct MHD_Daemon *httpd;
	char		csp[512];	/* the page's Content-Security-Policy */
};
int ts_metrics_serve(struct ts_metrics_server *s, int lfd);
void ts_metrics_stop(struct ts_metrics_server *s);

/* page.c: the status page (a constant document), and the
 * Content-Security-Policy that lets exactly its inline script and style run. */
const char *ts_page(size_t *len);
int ts_page_csp(char *out, size_t len);

/* The daemons: each returns the exit status, as a one-shot command does. */
int cmd_agent(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sync(struct cli_ctx *ctx, int argc, char **argv);
int cmd_rollout(struct cli_ctx *ctx, int argc, char **argv);

#endif /* TCPSHIFT_DAEMON_H */
