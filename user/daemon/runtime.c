// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The long-running helpers' shared pieces: see daemon.h. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>

#include "daemon.h"

void ts_vlog(const char *who, const char *fmt, va_list ap)
{
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "tcpshift %s: %s ", who, stamp);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ts_log(const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ts_vlog(who, fmt, ap);
	va_end(ap);
}

socklen_t ts_sockaddr_of(__u8 family, const __be32 addr[4], __be16 port,
			 struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == TS_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = port;
		memcpy(&sin->sin_addr, addr, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = port;
	memcpy(&sin6->sin6_addr, addr, 16);
	return sizeof(*sin6);
}

bool ts_endpoint_of(const struct sockaddr_storage *ss, struct ts_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		ep->family = TS_AF_INET;
		ep->port = sin->sin_port;
		memcpy(ep->addr, &sin->sin_addr, 4);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		ep->family = TS_AF_INET6;
		ep->port = sin6->sin6_port;
		memcpy(ep->addr, &sin6->sin6_addr, 16);
		return true;
	}
	return false;
}

int ts_metrics_listen(const char *spec, struct ts_err *err)
{
	struct ts_endpoint ep;
	struct sockaddr_storage ss = {};
	socklen_t sl;
	int fd, one = 1;

	if (ts_parse_endpoint(spec, &ep, err))
		return -1;
	sl = ts_sockaddr_of(ep.family, ep.addr, ep.port, &ss);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot open the metrics socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 64)) {
		int e = errno;

		close(fd);
		ts_fail(err, e == EADDRINUSE ? TS_ERR_BUSY : e == EADDRNOTAVAIL ? TS_ERR_USAGE
			     : TS_ERR_RUNTIME,
			"cannot serve metrics on %s: %s%s", spec, strerror(e),
			e == EADDRINUSE ? ": another process listens there; pick another --metrics"
			: e == EADDRNOTAVAIL ? ": no such local address here" : "");
		return -1;
	}
	return fd;
}

/* Headers of every answer: nothing is sniffed into another type, cached or
 * framed, and no referrer leaves. */
static void add_common_headers(struct MHD_Response *resp, const char *type)
{
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

static struct MHD_Response *static_text(const char *text)
{
	return MHD_create_response_from_buffer(strlen(text), (void *)text,
					       MHD_RESPMEM_PERSISTENT);
}

/* The query of GET /metrics: every service=NAME (more than the most, or an
 * empty one, marks it bad); other arguments are not ours to refuse. */
struct metrics_args {
	struct ts_metrics_query	q;
	bool			bad;
};

static enum MHD_Result metrics_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct metrics_args *a = cls;

	(void)kind;
	if (strcmp(key, "service"))
		return MHD_YES;
	if (!value || !*value || a->q.nservices == TS_METRICS_MAX_SELECTED)
		a->bad = true;
	else
		a->q.services[a->q.nservices++] = value;
	return MHD_YES;
}

/* GET /metrics[?service=NAME...]: Prometheus' text format. */
static struct MHD_Response *route_metrics(const struct ts_metrics_server *s,
					  struct MHD_Connection *conn, unsigned int *code)
{
	struct metrics_args args = {};
	size_t len = 0;
	char *text;

	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, metrics_arg, &args);
	if (args.bad) {
		char msg[96];
		int n = snprintf(msg, sizeof(msg), "service: give 1 to %d service names, e.g. "
				 "?service=web&service=api\n", TS_METRICS_MAX_SELECTED);

		*code = MHD_HTTP_BAD_REQUEST;
		return MHD_create_response_from_buffer((size_t)n, msg, MHD_RESPMEM_MUST_COPY);
	}
	text = s->collect(s->cls, &args.q, code, &len);

	if (!text)
		return NULL;
	return MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
}

/* GET /: the status page, a constant document. */
static struct MHD_Response *route_page(const struct ts_metrics_server *s,
				       struct MHD_Connection *conn, unsigned int *code)
{
	size_t len;
	const char *page = ts_page(&len);

	return MHD_create_response_from_buffer(len, (void *)page, MHD_RESPMEM_PERSISTENT);
}

/* GET /api/status[?since=SEQ]: what the page shows, as JSON; the history
 * after sample SEQ (all of it without). */
static struct MHD_Response *route_status(const struct ts_metrics_server *s,
					 struct MHD_Connection *conn, unsigned int *code)
{
	const char *arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
	unsigned long long since = 0;
	size_t len = 0;
	char *end, *text;

	if (arg) {
		since = strtoull(arg, &end, 10);
		if (*arg < '0' || *arg > '9' || *end) {
			*code = MHD_HTTP_BAD_REQUEST;
			return static_text("since: give a sample number, e.g. ?since=0\n");
		}
	}
	text = s->status(s->cls, (__u64)since, &len);
	if (!text)
		return NULL;
	return MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
}

/* The endpoint's routes; a server without a status callback (sync) has
 * /metrics alone. */
static const struct route {
	const char	*path;
	const char	*type;
	bool		status;		/* needs the status callback */
	struct MHD_Response *(*answer)(const struct ts_metrics_server *s,
				       struct MHD_Connection *conn, unsigned int *code);
} routes[] = {
	{ "/metrics", "text/plain; version=0.0.4; charset=utf-8", false, route_metrics },
	{ "/", "text/html; charset=utf-8", true, route_page },
	{ "/api/status", "application/json", true, route_status },
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **con_cls)
{
	static const char fail[] = "cannot read the maps\n";
	const struct ts_metrics_server *s = cls;
	const struct route *route = NULL;
	struct MHD_Response *resp;
	enum MHD_Result r;
	unsigned int code = MHD_HTTP_OK;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)con_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return MHD_NO;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(url, routes[i].path) && (!routes[i].status || s->status))
			route = &routes[i];
	if (!route) {
		code = MHD_HTTP_NOT_FOUND;
		resp = static_text(s->status ? "tcpshift: the status page is at /, its JSON at "
				   "/api/status, metrics at /metrics\n"
				   : "tcpshift: metrics are at /metrics\n");
		if (resp)
			add_common_headers(resp, "text/plain; charset=utf-8");
	} else if (!(resp = route->answer(s, conn, &code))) {
		code = MHD_HTTP_INTERNAL_SERVER_ERROR;
		resp = MHD_create_response_from_buffer(sizeof(fail) - 1, (void *)fail,
						       MHD_RESPMEM_PERSISTENT);
		if (resp)
			add_common_headers(resp, "text/plain; charset=utf-8");
	} else {
		add_common_headers(resp, code == MHD_HTTP_OK ? route->type
				   : "text/plain; charset=utf-8");
		if (route->answer == route_page)
			MHD_add_response_header(resp, "Content-Security-Policy", s->csp);
	}
	if (!resp)
		return MHD_NO;
	r = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return r;
}

/*
 * Everything a client can hold is bounded: connections in all and per client
 * address (a scraper needs one; 1,024 slow clients must not take the
 * process's descriptors), 5 s without progress closes one, and a request's
 * memory is capped. Nothing is logged per connection: a flood of them must
 * not become a flood of lines.
 */
int ts_metrics_serve(struct ts_metrics_server *s, int lfd)
{
	if (s->status && ts_page_csp(s->csp, sizeof(s->csp)))
		return -1;
	s->httpd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, answer, s,
				    MHD_OPTION_LISTEN_SOCKET, lfd,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)TS_HTTP_MAX_CONNS,
				    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				    (unsigned int)TS_HTTP_MAX_CONNS_PER_CLIENT,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)TS_HTTP_IDLE_S,
				    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
				    MHD_OPTION_END);
	return s->httpd ? 0 : -1;
}

void ts_metrics_stop(struct ts_metrics_server *s)
{
	if (s->httpd)
		MHD_stop_daemon(s->httpd);
	s->httpd = NULL;
}
