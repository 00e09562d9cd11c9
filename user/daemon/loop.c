// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The daemons' one event loop (daemon.h): epoll over a signalfd, timerfds and
 * the daemon's sockets, with systemd's readiness and watchdog notifications.
 * Every callback runs on the loop's thread, one at a time; a callback never
 * sleeps, and work whose cost grows with the flows runs in threads of its own
 * (the metrics endpoint), so a stalled scrape never delays a health check.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"

struct ts_watch {
	int		fd;
	ts_loop_fd_cb	cb;
	void		*data;
	struct ts_watch	*next;		/* in the loop's list */
	bool		dead;		/* unwatched: freed after the current batch */
};

struct ts_timer {
	struct ts_loop	*loop;
	struct ts_watch	*w;
	ts_loop_cb	cb;
	void		*data;
	__u64		interval_ns;
};

struct ts_loop {
	const char	*who;
	int		epfd, sigfd;
	struct ts_watch	*watches;
	bool		stopped;
	int		status;
	int		signal;		/* the signal that stopped it, or 0 */
	ts_loop_cb	reload;
	void		*reload_data;
	struct ts_timer	*watchdog;
};

static void dispatch_signal(struct ts_loop *l, int fd, __u32 events, void *data)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP && l->reload) {
			sd_notify(0, "RELOADING=1");
			l->reload(l, l->reload_data);
			sd_notify(0, "READY=1");
			continue;
		}
		/* SIGHUP without a reload: a hangup, which stops */
		l->signal = (int)si.ssi_signo;
		ts_loop_stop(l, 0);
	}
}

static void ping_watchdog(struct ts_loop *l, void *data)
{
	sd_notify(0, "WATCHDOG=1");
}

int ts_loop_new(struct ts_loop **out, const char *who, struct ts_err *err)
{
	struct ts_loop *l = calloc(1, sizeof(*l));
	sigset_t set;
	uint64_t usec = 0;

	*out = NULL;
	if (!l)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	l->who = who;
	l->sigfd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create the event loop: %s",
			       strerror(errno));
	}
	/* SIGTERM, SIGINT and SIGHUP arrive as events; SIGPIPE never (a peer
	 * that closes is an error of the write, not a reason to die) */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) ||
	    (l->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    ts_loop_watch(l, l->sigfd, EPOLLIN, dispatch_signal, NULL, err)) {
		if (l->sigfd < 0)
			ts_fail(err, TS_ERR_RUNTIME, "cannot receive signals: %s", strerror(errno));
		ts_loop_free(l);
		return -err->status;
	}
	/* systemd's WatchdogSec=: a ping from the loop itself at half the
	 * period, so that a loop that stalls is restarted */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec &&
	    ts_loop_timer(l, ping_watchdog, NULL, &l->watchdog, err) == 0)
		ts_timer_arm(l->watchdog, usec * 1000 / 2, usec * 1000 / 2);
	*out = l;
	return 0;
}

int ts_loop_watch(struct ts_loop *l, int fd, __u32 events, ts_loop_fd_cb cb, void *data,
		  struct ts_err *err)
{
	struct ts_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events };

	if (!w)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	w->fd = fd;
	w->cb = cb;
	w->data = data;
	ev.data.ptr = w;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int e = errno;

		free(w);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot watch descriptor %d: %s", fd,
			       strerror(e));
	}
	w->next = l->watches;
	l->watches = w;
	return 0;
}

static struct ts_watch *watch_of(struct ts_loop *l, int fd)
{
	for (struct ts_watch *w = l->watches; w; w = w->next)
		if (w->fd == fd && !w->dead)
			return w;
	return NULL;
}

void ts_loop_unwatch(struct ts_loop *l, int fd)
{
	struct ts_watch *w = watch_of(l, fd);

	if (!w)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->dead = true;
}

/* Free the watches unwatched during a batch: an event of the same batch may
 * still point to one of them. */
static void reap(struct ts_loop *l)
{
	struct ts_watch **p = &l->watches;

	while (*p) {
		struct ts_watch *w = *p;

		if (!w->dead) {
			p = &w->next;
			continue;
		}
		*p = w->next;
		free(w);
	}
}

static void dispatch_timer(struct ts_loop *l, int fd, __u32 events, void *data)
{
	struct ts_timer *t = data;
	__u64 expirations;

	/* several expirations missed while the loop stalled run the callback
	 * once: it judges by the time it finds, not by the ticks */
	if (read(fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	t->cb(l, t->data);
}

int ts_loop_timer(struct ts_loop *l, ts_loop_cb cb, void *data, struct ts_timer **out,
		  struct ts_err *err)
{
	struct ts_timer *t = calloc(1, sizeof(*t));
	int fd;

	*out = NULL;
	if (!t)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0) {
		free(t);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot create a timer: %s", strerror(errno));
	}
	t->loop = l;
	t->cb = cb;
	t->data = data;
	if (ts_loop_watch(l, fd, EPOLLIN, dispatch_timer, t, err)) {
		close(fd);
		free(t);
		return -err->status;
	}
	t->w = watch_of(l, fd);
	*out = t;
	return 0;
}

static struct timespec ts_of(__u64 ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ULL),
				  .tv_nsec = (long)(ns % 1000000000ULL) };
}

void ts_timer_arm(struct ts_timer *t, __u64 first_ns, __u64 interval_ns)
{
	struct itimerspec its = { .it_value = ts_of(first_ns), .it_interval = ts_of(interval_ns) };

	/* 0 would disarm: "now" is the next nanosecond */
	if (!first_ns)
		its.it_value.tv_nsec = 1;
	t->interval_ns = interval_ns;
	timerfd_settime(t->w->fd, 0, &its, NULL);
}

void ts_timer_at(struct ts_timer *t, __u64 mono_ns)
{
	struct itimerspec its = { .it_value = ts_of(mono_ns ? mono_ns : 1) };

	t->interval_ns = 0;
	timerfd_settime(t->w->fd, TFD_TIMER_ABSTIME, &its, NULL);
}

void ts_timer_disarm(struct ts_timer *t)
{
	struct itimerspec its = {};

	timerfd_settime(t->w->fd, 0, &its, NULL);
}

void ts_timer_free(struct ts_timer *t)
{
	if (!t)
		return;
	ts_loop_unwatch(t->loop, t->w->fd);
	close(t->w->fd);
	free(t);
}

void ts_loop_on_reload(struct ts_loop *l, ts_loop_cb cb, void *data)
{
	l->reload = cb;
	l->reload_data = data;
}

void ts_loop_ready(struct ts_loop *l, const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void ts_loop_stop(struct ts_loop *l, int status)
{
	if (!l->stopped)
		l->status = status;
	l->stopped = true;
}

bool ts_loop_stopped(const struct ts_loop *l)
{
	return l->stopped;
}

int ts_loop_signal(const struct ts_loop *l)
{
	return l->signal;
}

/* Dispatch events until stopped or until mono_ns (0: no end); false when stopped. */
bool ts_loop_run_until(struct ts_loop *l, __u64 until_ns)
{
	struct epoll_event ev[64];

	while (!l->stopped) {
		int timeout = -1, n;

		if (until_ns) {
			__u64 now = ts_now_ns();

			if (now >= until_ns)
				return true;
			timeout = (int)((until_ns - now + 999999) / 1000000);
		}
		n = epoll_wait(l->epfd, ev, sizeof(ev) / sizeof(ev[0]), timeout);
		if (n < 0 && errno != EINTR) {
			ts_log(l->who, "the event loop failed: %s", strerror(errno));
			ts_loop_stop(l, TS_ERR_RUNTIME);
			break;
		}
		for (int i = 0; i < n && !l->stopped; i++) {
			struct ts_watch *w = ev[i].data.ptr;

			if (!w->dead)
				w->cb(l, w->fd, ev[i].events, w->data);
		}
		reap(l);
	}
	return false;
}

int ts_loop_run(struct ts_loop *l)
{
	ts_loop_run_until(l, 0);
	sd_notify(0, "STOPPING=1");
	return l->status;
}

void ts_loop_free(struct ts_loop *l)
{
	if (!l)
		return;
	ts_timer_free(l->watchdog);
	for (struct ts_watch *w = l->watches; w; w = w->next)
		w->dead = true;
	reap(l);
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l);
}
