// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The journal of committed changes (doc/DESIGN.md, "History and undo"): for
 * each change to an instance's configuration, who made it, when, with what
 * command, and the configuration document before and after. It lives in a file
 * outside bpffs, TCPSHIFT_STATE_DIR (default /var/lib/tcpshift) /<the pin
 * directory, escaped>/journal.json, so that it outlives the pinned maps: a
 * reboot or an unload empties bpffs, and `restore` brings the last document
 * back from here.
 *
 * The hook is the commit point: taking the pin directory's lock exclusive
 * reads the document (ts_journal_begin), letting go of it reads it again and,
 * when the two differ, appends an entry (ts_journal_commit). Every command
 * that changes the configuration goes through there exactly once per commit,
 * whatever function made the change; a command that changed nothing (a health
 * transition, a failed command) leaves no entry. The file is rewritten whole,
 * to a temporary file that is renamed over it, under that same lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "libtcpshift.h"

#define JOURNAL_FILE	"journal.json"

/* TCPSHIFT_STATE_DIR/<pin dir escaped>: the '/' become '-', and bytes other
 * than letters, digits, '.' and '_' become \xNN (as systemd-escape --path does),
 * so that two pin directories never share a journal. 0, or -ENOENT: no
 * journal is kept (TCPSHIFT_STATE_DIR set empty). */
int ts_journal_dir(const char *pin_dir, char *buf, size_t len)
{
	const char *base = getenv(TS_STATE_DIR_ENV);
	size_t n;
	int w;

	if (!base)
		base = TS_DEFAULT_STATE_DIR;
	if (!*base)
		return -ENOENT;
	w = snprintf(buf, len, "%s/", base);
	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	n = (size_t)w;
	while (*pin_dir == '/')
		pin_dir++;
	for (const char *p = pin_dir; *p; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[5];
		const char *add = esc;

		if (c == '/') {
			while (p[1] == '/')
				p++;
			if (!p[1])
				break;
			add = "-";
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '_' || (c == '.' && p != pin_dir)) {
			esc[0] = (char)c;
			esc[1] = '\0';
		} else {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
		}
		if (n + strlen(add) >= len)
			return -ENAMETOOLONG;
		memcpy(buf + n, add, strlen(add) + 1);
		n += strlen(add);
	}
	if (n == (size_t)w)
		return -EINVAL;
	return 0;
}

void ts_journal_free(struct ts_journal *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->entries[i].command);
		free(j->entries[i].before);
		free(j->entries[i].after);
	}
	free(j->entries);
	memset(j, 0, sizeof(*j));
}

static char *dup_member(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return strdup(json_object_get_string(v));
}

static __u64 u64_member(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (__u64)json_object_get_int64(v) : 0;
}

/* Parse the journal's text into j: 0, or -EINVAL when it is not one. */
static int journal_parse(const char *text, struct ts_journal *j)
{
	json_object *root = json_tokener_parse(text), *entries;
	size_t n;
	int r = -EINVAL;

	if (!root || !json_object_object_get_ex(root, "entries", &entries) ||
	    !json_object_is_type(entries, json_type_array))
		goto out;
	n = json_object_array_length(entries);
	if (n > TS_JOURNAL_MAX_ENTRIES)
		goto out;
	j->entries = calloc(n ? n : 1, sizeof(*j->entries));
	if (!j->entries) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(entries, i);
		struct ts_journal_entry *e = &j->entries[j->n];
		char *user;

		e->seq = u64_member(o, "seq");
		e->time_s = u64_member(o, "time");
		e->uid = (__u32)u64_member(o, "uid");
		user = dup_member(o, "user");
		snprintf(e->user, sizeof(e->user), "%s", user ? user : "");
		free(user);
		e->command = dup_member(o, "command");
		e->before = dup_member(o, "before");
		e->after = dup_member(o, "after");
		j->n++;
		if (!e->seq || !e->command || !e->before || !e->after)
			goto out;
	}
	r = 0;
out:
	json_object_put(root);
	if (r)
		ts_journal_free(j);
	return r;
}

int ts_journal_read(const char *pin_dir, struct ts_journal *j, struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX + 256], path[TS_PIN_DIR_MAX + 300];
	struct stat st;
	char *text;
	int fd, r;

	memset(j, 0, sizeof(*j));
	r = ts_journal_dir(pin_dir, dir, sizeof(dir));
	if (r == -ENOENT)
		return 0;
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "no journal for %s: %s", pin_dir,
			       strerror(-r));
	snprintf(path, sizeof(path), "%s/" JOURNAL_FILE, dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || fstat(fd, &st)) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read the journal %s: %s", path,
			       strerror(-r));
	}
	if ((size_t)st.st_size > TS_JOURNAL_MAX_FILE) {
		close(fd);
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the journal %s is %lld bytes, more than a journal can be: move it "
			       "away",
			       path, (long long)st.st_size);
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory reading %s", path);
	}
	r = (int)read(fd, text, (size_t)st.st_size);
	close(fd);
	if (r != st.st_size) {
		free(text);
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read the journal %s: %s", path,
			       r < 0 ? strerror(errno) : "short read");
	}
	text[st.st_size] = '\0';
	r = journal_parse(text, j);
	free(text);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the journal %s is not one tcpshift wrote: move it away (history "
			       "starts again)",
			       path);
	return 0;
}

static int mkdir_mode(const char *path, mode_t mode)
{
	if (!mkdir(path, mode) || errno == EEXIST)
		return 0;
	return -errno;
}

/* Write j to dir/journal.json: a temporary file, synced, renamed over it. */
static int journal_write(const char *dir, const char *pin_dir, const struct ts_journal *j)
{
	char path[TS_PIN_DIR_MAX + 300], tmp[TS_PIN_DIR_MAX + 320], base[TS_PIN_DIR_MAX + 256];
	json_object *root = json_object_new_object(), *entries = json_object_new_array();
	const char *text;
	char *slash;
	size_t len;
	int fd = -1, r = -ENOMEM, dfd;

	if (!root || !entries)
		goto out;
	json_object_object_add(root, "tcpshift_journal", json_object_new_int(1));
	json_object_object_add(root, "pin_dir", json_object_new_string(pin_dir));
	json_object_object_add(root, "entries", entries);
	for (size_t i = 0; i < j->n; i++) {
		const struct ts_journal_entry *e = &j->entries[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
		json_object_object_add(o, "time", json_object_new_int64((int64_t)e->time_s));
		json_object_object_add(o, "uid", json_object_new_int64(e->uid));
		json_object_object_add(o, "user", json_object_new_string(e->user));
		json_object_object_add(o, "command", json_object_new_string(e->command));
		json_object_object_add(o, "before", json_object_new_string(e->before));
		json_object_object_add(o, "after", json_object_new_string(e->after));
		json_object_array_add(entries, o);
	}
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
						    JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(text);
	/* the state directory readable by all, the instance's by root alone */
	snprintf(base, sizeof(base), "%s", dir);
	slash = strrchr(base, '/');
	if (slash && slash != base) {
		*slash = '\0';
		r = mkdir_mode(base, 0755);
		if (r)
			goto out;
	}
	r = mkdir_mode(dir, 0700);
	if (r)
		goto out;
	snprintf(path, sizeof(path), "%s/" JOURNAL_FILE, dir);
	snprintf(tmp, sizeof(tmp), "%s/." JOURNAL_FILE ".%d", dir, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	for (size_t done = 0; done < len;) {
		ssize_t w = write(fd, text + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			goto out;
		}
		done += (size_t)w;
	}
	if (fsync(fd) || close(fd)) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path)) {
		r = -errno;
		goto out;
	}
	/* the rename itself durable */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r)
		unlink(tmp);
	json_object_put(root);
	return r;
}

/* The command line of this process, its arguments separated by spaces (one
 * with a space or a quote in it quoted), at most len bytes. */
static void command_line(char *buf, size_t len)
{
	char raw[4096];
	size_t n = 0, out = 0;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : read(fd, raw, sizeof(raw) - 1);

	if (fd >= 0)
		close(fd);
	buf[0] = '\0';
	if (got <= 0)
		return;
	raw[got] = '\0';
	for (const char *arg = raw; arg < raw + got; arg += n + 1) {
		bool quote = !*arg || strpbrk(arg, " \t\"'\\");

		n = strlen(arg);
		/* the program by its name, not its path */
		if (arg == raw && strrchr(arg, '/'))
			arg = strrchr(arg, '/') + 1, n = strlen(arg);
		out += (size_t)snprintf(buf + out, out < len ? len - out : 0, "%s%s%s%s",
					out ? " " : "", quote ? "'" : "", arg, quote ? "'" : "");
		if (out >= len)
			break;
	}
}

int ts_journal_append(const char *pin_dir, const char *before, const char *after,
		      struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX + 256], command[1024];
	struct ts_journal j;
	struct ts_journal_entry *e, *grown;
	struct passwd *pw;
	size_t bytes = 0, drop = 0;
	const char *sudo = getenv("SUDO_USER");
	int r = ts_journal_dir(pin_dir, dir, sizeof(dir));

	if (r == -ENOENT)
		return 0;
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "no journal for %s: %s", pin_dir,
			       strerror(-r));
	if (ts_journal_read(pin_dir, &j, err))
		return -TS_ERR_RUNTIME;
	grown = realloc(j.entries, (j.n + 1) * sizeof(*j.entries));
	if (!grown) {
		ts_journal_free(&j);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory journaling a change");
	}
	j.entries = grown;
	e = &j.entries[j.n];
	memset(e, 0, sizeof(*e));
	e->seq = j.n ? j.entries[j.n - 1].seq + 1 : 1;
	e->time_s = (__u64)time(NULL);
	e->uid = (__u32)getuid();
	pw = getpwuid(e->uid);
	/* sudo: the user who ran it, not only root */
	snprintf(e->user, sizeof(e->user), "%s%s%s", pw ? pw->pw_name : "?",
		 sudo && e->uid == 0 ? " (sudo from " : "", sudo && e->uid == 0 ? sudo : "");
	if (sudo && e->uid == 0 && strlen(e->user) + 1 < sizeof(e->user))
		strcat(e->user, ")");
	command_line(command, sizeof(command));
	e->command = strdup(command);
	e->before = strdup(before);
	e->after = strdup(after);
	j.n++;
	if (!e->command || !e->before || !e->after) {
		ts_journal_free(&j);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory journaling a change");
	}
	/* bounded: the oldest go first; the newest always stays */
	for (size_t i = j.n; i-- > 0;) {
		const struct ts_journal_entry *x = &j.entries[i];

		bytes += strlen(x->command) + strlen(x->before) + strlen(x->after) + 128;
		if (i + 1 < j.n && (bytes > TS_JOURNAL_MAX_BYTES ||
				    j.n - i > TS_JOURNAL_MAX_ENTRIES)) {
			drop = i + 1;
			break;
		}
	}
	for (size_t i = 0; i < drop; i++) {
		free(j.entries[i].command);
		free(j.entries[i].before);
		free(j.entries[i].after);
	}
	memmove(j.entries, j.entries + drop, (j.n - drop) * sizeof(*j.entries));
	j.n -= drop;
	r = journal_write(dir, pin_dir, &j);
	ts_journal_free(&j);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the journal under %s: %s", dir,
			       strerror(-r));
	return 0;
}

/* ---- the hook at the commit point (maps.c) ----------------------------------------- */

char *ts_journal_before(const struct ts_maps *m)
{
	struct ts_err err;

	if (getenv(TS_STATE_DIR_ENV) && !*getenv(TS_STATE_DIR_ENV))
		return NULL;
	/* NULL when unreadable (a load that did not finish): nothing journaled */
	return ts_doc_text_read(m, &err);
}

void ts_journal_after(const struct ts_maps *m, const char *before)
{
	struct ts_err err;
	char *after;

	if (!before)
		return;
	after = ts_doc_text_read(m, &err);
	if (after && strcmp(after, before) && ts_journal_append(m->pin_dir, before, after, &err))
		fprintf(stderr, "tcpshift: warning: the change is made, but not in the journal "
			"(history, undo and restore do not know it): %s\n", err.msg);
	free(after);
}

void ts_journal_begin(struct ts_maps *m)
{
	free(m->journal_before);
	m->journal_before = ts_journal_before(m);
}

void ts_journal_commit(struct ts_maps *m)
{
	ts_journal_after(m, m->journal_before);
	free(m->journal_before);
	m->journal_before = NULL;
}
