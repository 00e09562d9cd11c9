// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift top: the live view in a terminal (user/lib/live.c) */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "live.h"

static const char help[] =
	"Usage: tcpshift top [SERVICE] [--interval DURATION] [--count N]\n"
	"\n"
	"Per service and backend, refreshed every interval: the operator's weight, the\n"
	"effective weight (0 while down by its health checks), health, share of the\n"
	"table, new connections, refused and timed-out handshakes and bytes per second\n"
	"(from two reads of the data plane's counters), open connections, handshake\n"
	"time (median and 99th percentile: upper bounds of histogram buckets), a drain\n"
	"and its deadline, and the rollout in progress (its step and when it is judged\n"
	"next, or interrupted).\n"
	"It reads the maps itself: no agent needed. No flow table is walked.\n"
	"\n"
	"On a terminal it takes the screen until q, Ctrl-C or SIGTERM, and gives it\n"
	"back as it was. Keys: s sort by the next column (name, new/s, open, share,\n"
	"p99), n or Tab the next service, p the previous one, a all services, q quit.\n"
	"Otherwise (a pipe, -j) it prints one sample per interval: a table, or with -j\n"
	"one JSON object a line, the members of the agent's /api/status without its\n"
	"history: {\"time\", \"services\": [{\"name\", \"vip\", \"rollout\", \"backends\": [...]}]}.\n"
	"\n"
	"  --interval DURATION   between two samples (default 1s, at least 100ms)\n"
	"  --count N             stop after N samples (default: until stopped)\n"
	"\n"
	"Examples:\n"
	"  tcpshift top\n"
	"  tcpshift top web\n"
	"  tcpshift -j top web --count 5 | jq -c '.services[].backends[] | [.name, .rate.new_flows]'\n";

static volatile sig_atomic_t stop_signal, resized;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		resized = 1;
	else
		stop_signal = sig;
}

struct screen {
	bool		on;		/* the terminal is ours */
	struct termios	saved;
	unsigned short	rows, cols;
};

static void screen_size(struct screen *sc)
{
	struct winsize ws = {};

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) || !ws.ws_row || !ws.ws_col) {
		ws.ws_row = 24;
		ws.ws_col = 80;
	}
	sc->rows = ws.ws_row;
	sc->cols = ws.ws_col;
}

/* The alternate screen, no cursor, keys one at a time without echo. */
static int screen_take(struct screen *sc)
{
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &sc->saved))
		return -1;
	raw = sc->saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw))
		return -1;
	sc->on = true;
	fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
	fflush(stdout);
	screen_size(sc);
	return 0;
}

static void screen_give_back(struct screen *sc)
{
	if (!sc->on)
		return;
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &sc->saved);
	sc->on = false;
}

struct top {
	struct screen	sc;
	bool		interactive;
	bool		json;
	const char	*only;		/* SERVICE given, or the one picked */
	char		picked[TS_NAME_LEN];
	enum ts_live_sort sort;
	__u64		interval_ns;
};

/* One sample as the writer prints it: a JSON line, or the table. */
static int print_sample(struct top *t, struct ts_live *l, FILE *out)
{
	char stamp[32];
	time_t now = (time_t)l->real_s;
	struct tm tm;

	ts_live_sort(l, t->sort);
	print_start(out, t->json, 0);
	print_open_object(NULL);
	if (localtime_r(&now, &tm))
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	else
		snprintf(stamp, sizeof(stamp), "?");
	print_text("tcpshift top %s  every %.1fs  sorted by %s  %s\n", stamp,
		   t->interval_ns / 1e9, ts_live_sort_name(t->sort),
		   t->interactive ? "[s]ort [n]ext/[p]revious service [a]ll [q]uit" : "");
	ts_live_print(l, t->only, NULL, NULL);
	print_close_object();
	if (!t->json && !t->interactive)
		print_text("\n");
	return print_end();
}

/* The table on the screen, clipped to it: its text is escaped ASCII, a byte
 * a column. */
static void draw(struct top *t, struct ts_live *l)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	unsigned int row = 0;
	FILE *out = open_memstream(&text, &len);

	if (!out)
		return;
	print_sample(t, l, out);
	fclose(out);
	fputs("\033[H", stdout);
	for (line = strtok_r(text, "\n", &save); line && row < t->sc.rows;
	     line = strtok_r(NULL, "\n", &save), row++)
		printf("%s%.*s\033[K", row ? "\n" : "", (int)t->sc.cols, line);
	fputs("\033[J", stdout);
	fflush(stdout);
	free(text);
}

/* The service after (dir 1) or before (-1) the one picked; "" is all. */
static void pick_service(struct top *t, const struct ts_live *l, int dir)
{
	long n = (long)l->nservices, cur = -1;

	if (!n)
		return;
	for (long i = 0; i < n && t->only; i++)
		if (!strcmp(l->services[i].s->svc.name, t->only))
			cur = i;
	cur += dir;
	if (cur < -1)
		cur = n - 1;
	if (cur >= n)
		cur = -1;
	if (cur < 0) {
		t->only = NULL;
		return;
	}
	snprintf(t->picked, sizeof(t->picked), "%s", l->services[cur].s->svc.name);
	t->only = t->picked;
}

/* Keys waiting on stdin: false on q. */
static bool keys(struct top *t, const struct ts_live *l)
{
	char buf[32];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	for (ssize_t i = 0; i < n; i++) {
		switch (buf[i]) {
		case 'q':
		case 'Q':
			return false;
		case 's':
			t->sort = (t->sort + 1) % TS_LIVE_SORT_MAX;
			break;
		case 'S':
			t->sort = (t->sort + TS_LIVE_SORT_MAX - 1) % TS_LIVE_SORT_MAX;
			break;
		case 'n':
		case '\t':
			pick_service(t, l, 1);
			break;
		case 'p':
			pick_service(t, l, -1);
			break;
		case 'a':
			t->only = NULL;
			break;
		default:
			break;
		}
	}
	return true;
}

/* Until the next sample is due (mono_ns), keys and resizes redraw the view
 * at once. False when stopped (q, a signal). */
static bool wait_until(struct top *t, struct ts_live *l, __u64 due_ns)
{
	for (;;) {
		__u64 now = ts_now_ns();
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int ms, r;

		if (stop_signal)
			return false;
		if (now >= due_ns)
			return true;
		ms = (int)((due_ns - now + 999999) / 1000000);
		r = poll(&p, t->interactive ? 1 : 0, ms);
		if (stop_signal)
			return false;
		if (resized && t->interactive) {
			resized = 0;
			screen_size(&t->sc);
			fputs("\033[2J", stdout);
			draw(t, l);
		}
		if (r > 0 && t->interactive) {
			if (p.revents & (POLLHUP | POLLERR))
				return false;
			if (!keys(t, l))
				return false;
			draw(t, l);
		}
	}
}

int cmd_top(struct cli_ctx *ctx, int argc, char **argv)
{
	__u64 interval_ns = 1000000000ULL;
	__u32 count = 0;
	const struct cli_opt opts[] = {
		{ "interval", 0, CLI_DURATION, &interval_ns },
		{ "count", 0, CLI_U32, &count, .metavar = "N", .min = 1, .max = 1000000000 },
		CLI_OPT_HELP,
		{},
	};
	struct top t = { .json = ctx->json };
	struct ts_live prev = {}, cur = {};
	struct sigaction sa = { .sa_handler = on_signal };
	struct ts_maps m;
	struct ts_err err = {};
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs > 1)
		return cli_usage(argv[0], "top takes at most one SERVICE");
	if (interval_ns < 100000000ULL)
		return cli_usage(argv[0], "--interval must be at least 100ms: the rates come "
				 "from two reads");
	t.interval_ns = interval_ns;
	t.only = nargs ? argv[1] : NULL;
	r = cli_open_maps_read(ctx, &m);
	if (r)
		return r;
	if (ts_live_read(&m, &prev, &err)) {
		ts_maps_close(&m);
		return cli_report(&err);
	}
	if (t.only && !ts_config_service(&prev.cfg, t.only)) {
		ts_live_free(&prev);
		ts_maps_close(&m);
		ts_fail(&err, TS_ERR_USAGE, "unknown service '%s': see 'tcpshift service list'",
			t.only);
		return cli_report(&err);
	}
	/* no SA_RESTART: a signal ends the wait at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	t.interactive = !t.json && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) &&
			!screen_take(&t.sc);
	if (t.interactive)
		draw(&t, &prev);
	for (__u32 n = 0; !count || n < count; n++) {
		if (!wait_until(&t, &prev, prev.mono_ns + t.interval_ns))
			break;
		if (ts_live_read(&m, &cur, &err)) {
			r = TS_ERR_RUNTIME;
			break;
		}
		ts_live_rates(&cur, &prev);
		ts_live_free(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		if (t.interactive) {
			draw(&t, &prev);
		} else if (print_sample(&t, &prev, stdout)) {
			r = TS_ERR_RUNTIME;	/* the reader went away */
			break;
		}
	}
	screen_give_back(&t.sc);
	ts_live_free(&prev);
	ts_maps_close(&m);
	if (r == TS_ERR_RUNTIME && err.msg[0])
		return cli_report(&err);
	return r;
}
