// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The journal of committed changes (doc/DESIGN.md, "History and undo"): for
 * each change to an instance's configuration, who made it, when, with what
 * command, and what it changed: the services it changed as they were before
 * and after, and the seed, each as a document of only those (as `export` would
 * print them). It lives outside bpffs, in TCPSHIFT_STATE_DIR (default
 * /var/lib/tcpshift) /<the pin directory, escaped>/, so that it outlives the
 * pinned maps: a reboot or an unload empties bpffs, and `restore` brings the
 * last configuration back from here.
 *
 * Two files: journal.json, the entries (small: a change's size, bounded), and
 * base-N.json, the whole document after change N, which journal.json names.
 * The document after any change the journal holds is the base with the
 * entries after N applied, or the entries down to N undone. The base is
 * written again only every TS_JOURNAL_BASE_EVERY changes, or when the entries
 * since it outgrow half the journal's bound of bytes, so that a change costs
 * what it changed, not what the configuration holds. Journals of 0.3 hold
 * whole documents in every entry ("before", "after"); they are read as they
 * are, and the first change after an upgrade writes a base.
 *
 * The hook is the commit point: taking the pin directory's lock exclusive
 * reads the seed (ts_journal_begin); every change, before it writes a service,
 * reads that service as it was (ts_journal_touch, in config.c); letting go of
 * the lock reads the touched services again and, when any differs, appends an
 * entry (ts_journal_commit). Every command that changes the configuration
 * goes through there exactly once per commit, whatever function made the
 * change; a command that changed nothing (a health transition, a failed
 * command) leaves no entry. Each file is written to a temporary file that is
 * renamed over it, under that same lock: a new base first, then the
 * journal.json that names it, then the old base is removed, so that a crash
 * leaves a journal and the base it names.
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
#define BASE_FILE	"base-%llu.json"	/* the document after change %llu */

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
	j->base_seq = u64_member(root, "base");
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
		/* 0.3 wrote whole documents, later releases what changed */
		e->partial = json_object_object_get_ex(o, "changed_before", NULL);
		e->before = dup_member(o, e->partial ? "changed_before" : "before");
		e->after = dup_member(o, e->partial ? "changed_after" : "after");
		j->n++;
		/* one change after the other, none missing */
		if (!e->seq || !e->command || !e->before || !e->after ||
		    (i && e->seq != e[-1].seq + 1))
			goto out;
	}
	r = 0;
out:
	json_object_put(root);
	if (r)
		ts_journal_free(j);
	return r;
}

/* The whole of path, NUL-terminated, in *text: 0, -errno, or -EFBIG past max. */
static int read_whole(const char *path, size_t max, char **text)
{
	struct stat st;
	ssize_t got;
	int fd, r;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	*text = malloc((size_t)st.st_size + 1);
	if (!*text) {
		close(fd);
		return -ENOMEM;
	}
	got = read(fd, *text, (size_t)st.st_size);
	r = got < 0 ? -errno : got != st.st_size ? -EIO : 0;
	close(fd);
	if (r) {
		free(*text);
		*text = NULL;
		return r;
	}
	(*text)[st.st_size] = '\0';
	return 0;
}

int ts_journal_read(const char *pin_dir, struct ts_journal *j, struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX + 256], path[TS_PIN_DIR_MAX + 300];
	char *text;
	int r;

	memset(j, 0, sizeof(*j));
	r = ts_journal_dir(pin_dir, dir, sizeof(dir));
	if (r == -ENOENT)
		return 0;
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "no journal for %s: %s", pin_dir,
			       strerror(-r));
	snprintf(path, sizeof(path), "%s/" JOURNAL_FILE, dir);
	r = read_whole(path, TS_JOURNAL_MAX_FILE, &text);
	if (r == -ENOENT)
		return 0;
	if (r == -EFBIG)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the journal %s is more than %u bytes, more than a journal can be: "
			       "move it away",
			       path, TS_JOURNAL_MAX_FILE);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read the journal %s: %s", path,
			       strerror(-r));
	r = journal_parse(text, j);
	free(text);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "the journal %s is not one tcpshift wrote: move it away (history "
			       "starts again)",
			       path);
	return 0;
}

/* ---- documents of a service a line ------------------------------------------------ */

struct base_out {
	FILE	*f;
	bool	first;
};

/* A document of a service a line, as the base is and entries are: the header
 * line, then base_service() each, then base_close(). */
static int base_open(struct base_out *o, char **buf, size_t *len, __u32 seed)
{
	o->first = true;
	o->f = open_memstream(buf, len);
	if (!o->f)
		return -ENOMEM;
	fprintf(o->f, "{\"tcpshift\":%d,\"seed\":%u,\"services\":[", TS_DOC_VERSION, seed);
	return 0;
}

static int base_close(struct base_out *o)
{
	fputs("\n]}\n", o->f);
	return fclose(o->f) ? -ENOMEM : 0;
}

static void base_service(struct base_out *o, const struct ts_doc_service *s)
{
	fputs(o->first ? "\n" : ",\n", o->f);
	ts_doc_service_print(o->f, s);
	o->first = false;
}

/* The document as text of a service a line (the base's shape), or NULL. */
static char *doc_lines(const struct ts_doc *doc)
{
	struct base_out o;
	char *buf = NULL;
	size_t len = 0;

	if (base_open(&o, &buf, &len, doc->seed))
		return NULL;
	for (size_t i = 0; i < doc->nservices; i++)
		base_service(&o, &doc->services[i]);
	if (base_close(&o)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- documents at a change ---------------------------------------------------------- */

/* Undo or redo one entry on doc: the services from names go, those of to come
 * (documents of only the services the entry changed, or whole ones). */
static int doc_step(struct ts_doc *doc, const char *from_text, const char *to_text,
		    struct ts_err *err)
{
	struct ts_doc from = {}, to = {};
	struct ts_doc_service *out;
	size_t k = 0;
	int r;

	r = ts_doc_parse(from_text, strlen(from_text), &from, err);
	r = r ?: ts_doc_parse(to_text, strlen(to_text), &to, err);
	if (r)
		goto out;
	out = calloc(doc->nservices + to.nservices + 1, sizeof(*out));
	if (!out) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	/* both sorted by name: merge */
	for (size_t i = 0, t = 0; i < doc->nservices || t < to.nservices;) {
		struct ts_doc_service *s = i < doc->nservices ? &doc->services[i] : NULL;
		int c = !s ? 1 : t == to.nservices ? -1 : strcmp(s->name, to.services[t].name);

		if (c < 0 && ts_doc_service_find(&from, s->name)) {
			free(s->backends);
			i++;
		} else if (c < 0) {
			out[k++] = *s;
			i++;
		} else {
			if (!c) {
				free(s->backends);
				i++;
			}
			out[k++] = to.services[t];
			to.services[t++].backends = NULL;
		}
	}
	free(doc->services);
	doc->services = out;
	doc->nservices = k;
	doc->seed = to.seed;
out:
	ts_doc_free(&from);
	ts_doc_free(&to);
	return r;
}

/* The document after change seq (seq of an entry, or the one before the
 * oldest) from the base, the entries applied forward or undone back to it. */
static char *doc_from_base(const char *dir, const struct ts_journal *j, __u64 seq,
			   struct ts_err *err)
{
	char path[TS_PIN_DIR_MAX + 320], *text;
	struct ts_doc doc = {};
	__u64 base = j->base_seq;
	int r;

	if (!base || !j->n || base + 1 < j->entries[0].seq || base > j->entries[j->n - 1].seq) {
		ts_fail(err, TS_ERR_RUNTIME,
			"the journal of change %llu has no base document to start from: it is "
			"damaged (move the journal's directory %s away; history starts again)",
			(unsigned long long)seq, dir);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/" BASE_FILE, dir, (unsigned long long)base);
	r = read_whole(path, TS_DOC_MAX_SIZE, &text);
	if (r) {
		ts_fail(err, TS_ERR_RUNTIME, "cannot read the journal's base document %s: %s",
			path, strerror(-r));
		return NULL;
	}
	if (seq == base)
		return text;
	r = ts_doc_parse(text, strlen(text), &doc, err);
	free(text);
	for (size_t i = 0; !r && i < j->n; i++) {
		const struct ts_journal_entry *e = &j->entries[i];

		if (e->seq > base && e->seq <= seq)
			r = doc_step(&doc, e->before, e->after, err);
	}
	for (size_t i = j->n; !r && i-- > 0;) {
		const struct ts_journal_entry *e = &j->entries[i];

		if (e->seq <= base && e->seq > seq)
			r = doc_step(&doc, e->after, e->before, err);
	}
	if (r) {
		ts_doc_free(&doc);
		return NULL;
	}
	/* formatted, so that what is imported is parsed as any document is */
	text = doc_lines(&doc);
	ts_doc_free(&doc);
	if (!text)
		ts_fail(err, TS_ERR_RUNTIME, "out of memory formatting a document");
	return text;
}

char *ts_journal_doc(const char *pin_dir, const struct ts_journal *j, __u64 seq,
		     struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX + 256];
	char *text;
	int r;

	/* an entry of 0.3 holds the whole documents */
	for (size_t i = 0; i < j->n; i++) {
		const struct ts_journal_entry *e = &j->entries[i];

		if (!e->partial && (e->seq == seq || e->seq == seq + 1)) {
			text = strdup(e->seq == seq ? e->after : e->before);
			if (!text)
				ts_fail(err, TS_ERR_RUNTIME, "out of memory");
			return text;
		}
	}
	r = ts_journal_dir(pin_dir, dir, sizeof(dir));
	if (r) {
		ts_fail(err, TS_ERR_RUNTIME, "no journal for %s: %s", pin_dir, strerror(-r));
		return NULL;
	}
	return doc_from_base(dir, j, seq, err);
}

/* ---- writing ------------------------------------------------------------------------ */

static int mkdir_mode(const char *path, mode_t mode)
{
	if (!mkdir(path, mode) || errno == EEXIST)
		return 0;
	return -errno;
}

/* The instance's directory, made when missing: the state directory readable
 * by all, the instance's by root alone. */
static int journal_mkdir(const char *dir)
{
	char base[TS_PIN_DIR_MAX + 256];
	char *slash;
	int r;

	snprintf(base, sizeof(base), "%s", dir);
	slash = strrchr(base, '/');
	if (slash && slash != base) {
		*slash = '\0';
		r = mkdir_mode(base, 0755);
		if (r)
			return r;
	}
	return mkdir_mode(dir, 0700);
}

/* dir/name holds text[0..len): a temporary file, synced, renamed over it, the
 * rename synced. */
static int file_replace(const char *dir, const char *name, const char *text, size_t len)
{
	char path[TS_PIN_DIR_MAX + 320], tmp[TS_PIN_DIR_MAX + 340];
	int fd, r = 0, dfd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d", dir, name, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t done = 0; done < len;) {
		ssize_t w = write(fd, text + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			break;
		}
		done += (size_t)w;
	}
	if (!r && fsync(fd))
		r = -errno;
	if (close(fd) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Write j to dir/journal.json. */
static int journal_write(const char *dir, const char *pin_dir, const struct ts_journal *j)
{
	json_object *root = json_object_new_object(), *list = json_object_new_array();
	const char *text;
	int r = -ENOMEM;

	if (!root || !list) {
		json_object_put(list);
		goto out;
	}
	json_object_object_add(root, "tcpshift_journal", json_object_new_int(2));
	json_object_object_add(root, "pin_dir", json_object_new_string(pin_dir));
	json_object_object_add(root, "base", json_object_new_int64((int64_t)j->base_seq));
	json_object_object_add(root, "entries", list);
	for (size_t i = 0; i < j->n; i++) {
		const struct ts_journal_entry *e = &j->entries[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
		json_object_object_add(o, "time", json_object_new_int64((int64_t)e->time_s));
		json_object_object_add(o, "uid", json_object_new_int64(e->uid));
		json_object_object_add(o, "user", json_object_new_string(e->user));
		json_object_object_add(o, "command", json_object_new_string(e->command));
		json_object_object_add(o, e->partial ? "changed_before" : "before",
				       json_object_new_string(e->before));
		json_object_object_add(o, e->partial ? "changed_after" : "after",
				       json_object_new_string(e->after));
		json_object_array_add(list, o);
	}
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
						    JSON_C_TO_STRING_NOSLASHESCAPE);
	r = text ? file_replace(dir, JOURNAL_FILE, text, strlen(text)) : -ENOMEM;
out:
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

static size_t entry_bytes(const struct ts_journal_entry *e)
{
	return strlen(e->command) + strlen(e->before) + strlen(e->after) + 128;
}

/* ---- what a change touched ----------------------------------------------------------- */

/* What a change under the lock touched: each service as it was before its
 * first write, and the seed. */
struct ts_journal_change {
	__u32			seed;
	bool			unread;		/* a service could not be read */
	bool			resync;		/* compared with the journal's last
						 * document (resync_docs) */
	size_t			n, cap;		/* touched names */
	char			(*names)[TS_NAME_LEN];
	struct ts_doc		before;		/* those that existed, unsorted */
	size_t			slots;		/* an open-addressed set of names */
	__u32			*set;		/* index + 1 into names, 0: empty */
};

/* What c holds, c itself left (one on the stack: a set of names). */
static void change_clear(struct ts_journal_change *c)
{
	ts_doc_free(&c->before);
	free(c->names);
	free(c->set);
	memset(c, 0, sizeof(*c));
}

void ts_journal_change_free(struct ts_journal_change *c)
{
	if (!c)
		return;
	change_clear(c);
	free(c);
}

static __u32 name_hash(const char *s)
{
	__u32 h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Add name to c's set: 1 when added, 0 when it was there, -ENOMEM. */
static int touched_add(struct ts_journal_change *c, const char *name)
{
	size_t i;

	if ((c->n + 1) * 2 > c->slots) {
		size_t slots = c->slots ? c->slots * 2 : 64;
		__u32 *set = calloc(slots, sizeof(*set));

		if (!set)
			return -ENOMEM;
		for (size_t k = 0; k < c->n; k++) {
			i = name_hash(c->names[k]) & (slots - 1);
			while (set[i])
				i = (i + 1) & (slots - 1);
			set[i] = (__u32)k + 1;
		}
		free(c->set);
		c->set = set;
		c->slots = slots;
	}
	for (i = name_hash(name) & (c->slots - 1); c->set[i]; i = (i + 1) & (c->slots - 1))
		if (!strcmp(c->names[c->set[i] - 1], name))
			return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		void *names = realloc(c->names, cap * sizeof(*c->names));

		if (!names)
			return -ENOMEM;
		c->names = names;
		c->cap = cap;
	}
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
	c->set[i] = (__u32)++c->n;
	return 1;
}

/* Service name as the document shows it now, appended to doc (nothing when
 * there is none). */
static int service_read(const struct ts_maps *m, const char *name, __u32 seed, struct ts_doc *doc,
			struct ts_err *err)
{
	struct ts_doc one = {};
	struct ts_config cfg;
	void *grown;
	int r = ts_config_read_service(m, name, &cfg, err);

	r = r ?: ts_doc_from_config(&cfg, seed, &one, err);
	ts_config_free(&cfg);
	if (r || !one.nservices)
		goto out;
	grown = realloc(doc->services, (doc->nservices + 1) * sizeof(*doc->services));
	if (!grown) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	doc->services = grown;
	doc->services[doc->nservices++] = one.services[0];
	one.services[0].backends = NULL;
out:
	ts_doc_free(&one);
	return r;
}

static int cmp_service_name(const void *a, const void *b)
{
	return strcmp(((const struct ts_doc_service *)a)->name,
		      ((const struct ts_doc_service *)b)->name);
}

/* ---- the base: the whole document after a change ---------------------------------- */

static bool touched_has(const struct ts_journal_change *c, const char *name)
{
	if (!c->slots)
		return false;
	for (size_t i = name_hash(name) & (c->slots - 1); c->set[i]; i = (i + 1) & (c->slots - 1))
		if (!strcmp(c->names[c->set[i] - 1], name))
			return true;
	return false;
}

/* The names of the services of the document text, added to c. */
static int touched_add_doc(struct ts_journal_change *c, const char *text, struct ts_err *err)
{
	struct ts_doc doc;
	int r = ts_doc_parse(text, strlen(text), &doc, err);

	if (r)
		return r;
	for (size_t i = 0; !r && i < doc.nservices; i++)
		if (touched_add(c, doc.services[i].name) < 0)
			r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	ts_doc_free(&doc);
	return r;
}

/* Past this many services, reading the whole configuration once is cheaper
 * than reading them one by one (an import's). */
#define READ_WHOLE	1024

/* Append to doc the services of the configuration in force (seed: the seed
 * the document holds) that are in c; those that do not exist are not. */
static int touched_read(const struct ts_maps *m, const struct ts_journal_change *c, __u32 seed,
			struct ts_doc *doc, struct ts_err *err)
{
	struct ts_doc all = {};
	void *grown;
	int r;

	if (c->n <= READ_WHOLE) {
		r = 0;
		for (size_t i = 0; !r && i < c->n; i++)
			r = service_read(m, c->names[i], seed, doc, err);
		return r;
	}
	r = ts_doc_read(m, seed, &all, err);
	if (r)
		return r;
	grown = realloc(doc->services,
			(doc->nservices + all.nservices + 1) * sizeof(*doc->services));
	if (!grown) {
		ts_doc_free(&all);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	}
	doc->services = grown;
	for (size_t i = 0; i < all.nservices; i++) {
		if (!touched_has(c, all.services[i].name))
			continue;
		doc->services[doc->nservices++] = all.services[i];
		all.services[i].backends = NULL;
	}
	ts_doc_free(&all);
	return 0;
}

/*
 * Write base-<seq>.json: the document as it is now (the lock held, change seq
 * committed), one service a line so that the next base is written from this
 * one line by line. From the old base (old_seq), with the services the
 * entries since it changed read again from the maps; with none (0), or one
 * not of this shape, from the whole configuration.
 */
static int base_write(const struct ts_maps *m, const char *dir, const struct ts_journal *j,
		      __u64 old_seq, __u64 seq, struct ts_err *err)
{
	struct ts_journal_change touched = {};
	struct base_out o;
	char path[TS_PIN_DIR_MAX + 320], name[64], *buf = NULL, *line = NULL;
	struct ts_settings st;
	struct ts_doc now = {};
	size_t len = 0, cap = 0, k = 0;
	FILE *in = NULL;
	ssize_t n;
	int r = ts_settings_read(m, &st, err);

	now.seed = st.seed;
	for (size_t i = 0; !r && old_seq && i < j->n; i++)
		if (j->entries[i].seq > old_seq)
			r = touched_add_doc(&touched, j->entries[i].before, err) ?:
			    touched_add_doc(&touched, j->entries[i].after, err);
	r = r ?: touched_read(m, &touched, st.seed, &now, err);
	if (!r && old_seq) {
		snprintf(path, sizeof(path), "%s/" BASE_FILE, dir, (unsigned long long)old_seq);
		in = fopen(path, "re");
		if (!in)	/* written again from the configuration */
			r = -EINVAL;
	} else if (!r) {
		r = ts_doc_read(m, st.seed, &now, err);
	}
	if (r)
		goto again;
	qsort(now.services, now.nservices, sizeof(*now.services), cmp_service_name);
	if (base_open(&o, &buf, &len, st.seed)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	/* the old base's header line first, then a service a line, "]}" */
	if (in && getline(&line, &cap, in) <= 0)
		r = -EINVAL;
	while (!r && in && (n = getline(&line, &cap, in)) > 0) {
		char *end;

		if (!strncmp(line, "]}", 2))
			break;
		while (n && (line[n - 1] == '\n' || line[n - 1] == ','))
			line[--n] = '\0';
		if (strncmp(line, "{\"name\":\"", 9) || !(end = strchr(line + 9, '"'))) {
			r = -EINVAL;
			break;
		}
		*end = '\0';
		while (k < now.nservices && strcmp(now.services[k].name, line + 9) < 0)
			base_service(&o, &now.services[k++]);
		if (touched_has(&touched, line + 9)) {
			/* as it is now, or gone */
			if (k < now.nservices && !strcmp(now.services[k].name, line + 9))
				base_service(&o, &now.services[k++]);
			continue;
		}
		*end = '"';
		fputs(o.first ? "\n" : ",\n", o.f);
		fputs(line, o.f);
		o.first = false;
	}
	while (!r && k < now.nservices)
		base_service(&o, &now.services[k++]);
	if (base_close(&o) && !r)
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
again:
	if (r == -EINVAL) {
		/* gone, or not a base this release wrote: from the configuration */
		r = base_write(m, dir, j, 0, seq, err);
		goto out;
	}
	if (r)
		goto out;
	snprintf(name, sizeof(name), BASE_FILE, (unsigned long long)seq);
	r = file_replace(dir, name, buf, len);
	if (r)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot write %s/%s: %s", dir, name,
			    strerror(-r));
out:
	if (in)
		fclose(in);
	free(line);
	free(buf);
	ts_doc_free(&now);
	change_clear(&touched);
	return r;
}

static bool base_exists(const char *dir, const char *name)
{
	char path[TS_PIN_DIR_MAX + 320];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return !access(path, R_OK);
}

/* Append the change this process committed (documents of what it changed),
 * with the lock held exclusive; m: where a new base is read from. */
static int journal_append(const struct ts_maps *m, const char *before, const char *after,
			  struct ts_err *err)
{
	char dir[TS_PIN_DIR_MAX + 256], command[1024], name[64];
	struct ts_journal j;
	struct ts_journal_entry *e, *grown;
	struct passwd *pw;
	size_t bytes = 0, drop = 0, since_base = 0;
	const char *sudo = getenv("SUDO_USER");
	__u64 old_base, keep_after;
	bool roll;
	int r = ts_journal_dir(m->pin_dir, dir, sizeof(dir));

	if (r == -ENOENT)
		return 0;
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "no journal for %s: %s", m->pin_dir,
			       strerror(-r));
	if (ts_journal_read(m->pin_dir, &j, err))
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
	e->partial = true;
	j.n++;
	if (!e->command || !e->before || !e->after) {
		ts_journal_free(&j);
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory journaling a change");
	}
	/* A base the entries reach (0.3 had none; a journal started again
	 * leaves an old one), or a new one: the document now, after e. */
	old_base = j.base_seq;
	snprintf(name, sizeof(name), BASE_FILE, (unsigned long long)old_base);
	if (old_base + 1 < j.entries[0].seq || old_base >= e->seq ||
	    !base_exists(dir, name))
		old_base = 0;
	for (size_t i = 0; i < j.n; i++)
		if (j.entries[i].seq > old_base)
			since_base += entry_bytes(&j.entries[i]);
	roll = !old_base || e->seq - old_base > TS_JOURNAL_BASE_EVERY ||
	       since_base > TS_JOURNAL_MAX_BYTES / 2;
	r = journal_mkdir(dir);
	/* the new base before the journal that names it (the old one is
	 * removed after); from the entries since the old one, before any goes */
	if (!r && roll) {
		/* after a large change (an import), from the configuration: its
		 * entry would be parsed for the names it touched */
		r = base_write(m, dir, &j, since_base > TS_JOURNAL_MAX_BYTES / 2 ? 0 : old_base,
			       e->seq, err);
		if (r) {
			ts_journal_free(&j);
			return r;
		}
		j.base_seq = e->seq;
	}
	/* bounded: the oldest go first; the newest always stays, and so do
	 * those after the base (the base every few changes keeps them few) */
	keep_after = j.base_seq;
	for (size_t i = j.n; i-- > 0;) {
		const struct ts_journal_entry *x = &j.entries[i];

		bytes += entry_bytes(x);
		if (i + 1 < j.n && x->seq <= keep_after &&
		    (bytes > TS_JOURNAL_MAX_BYTES || j.n - i > TS_JOURNAL_MAX_ENTRIES)) {
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
	r = r ?: journal_write(dir, m->pin_dir, &j);
	if (!r && roll && old_base) {
		char path[TS_PIN_DIR_MAX + 320];

		snprintf(path, sizeof(path), "%s/" BASE_FILE, dir, (unsigned long long)old_base);
		unlink(path);
	}
	ts_journal_free(&j);
	if (r)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the journal under %s: %s", dir,
			       strerror(-r));
	return 0;
}

/* ---- the hook at the commit point (maps.c) ----------------------------------------- */

struct ts_journal_change *ts_journal_before(const struct ts_maps *m)
{
	struct ts_journal_change *c;
	struct ts_settings s;
	struct ts_err err;

	if (getenv(TS_STATE_DIR_ENV) && !*getenv(TS_STATE_DIR_ENV))
		return NULL;
	/* NULL when unreadable (a load that did not finish): nothing journaled */
	if (ts_settings_read(m, &s, &err))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c)
		c->seed = s.seed;
	return c;
}

void ts_journal_touch(struct ts_maps *m, const char *service)
{
	struct ts_journal_change *c = m->journal;
	struct ts_err err;
	int r;

	if (!c || c->unread)
		return;
	r = touched_add(c, service);
	if (r < 0 || (r > 0 && service_read(m, service, c->seed, &c->before, &err)))
		c->unread = true;
}

void ts_journal_touch_config(struct ts_maps *m, const struct ts_config *cfg)
{
	struct ts_journal_change *c = m->journal;
	struct ts_doc all = {};
	struct ts_err err;
	void *grown;

	if (!c || c->unread)
		return;
	if (ts_doc_from_config(cfg, c->seed, &all, &err)) {
		c->unread = true;
		return;
	}
	grown = realloc(c->before.services,
			(c->before.nservices + all.nservices + 1) * sizeof(*c->before.services));
	if (!grown) {
		c->unread = true;
		ts_doc_free(&all);
		return;
	}
	c->before.services = grown;
	for (size_t i = 0; i < all.nservices; i++) {
		int r = touched_add(c, all.services[i].name);

		if (r < 0)
			c->unread = true;
		if (r <= 0)
			continue;
		c->before.services[c->before.nservices++] = all.services[i];
		all.services[i].backends = NULL;
	}
	ts_doc_free(&all);
}

/* Keep of doc the services in changed. */
static void doc_keep(struct ts_doc *doc, const struct ts_journal_change *changed)
{
	size_t k = 0;

	for (size_t i = 0; i < doc->nservices; i++) {
		if (touched_has(changed, doc->services[i].name))
			doc->services[k++] = doc->services[i];
		else
			free(doc->services[i].backends);
	}
	doc->nservices = k;
}

/*
 * A change before this one was killed or failed under the lock (the lock was
 * taken with TS_SETTINGS_F_CHANGING set): it may have changed services that
 * no entry names, which what this change touched would not show. Its entry
 * is then the difference between the journal's last document and the whole
 * configuration now, so that the journal's documents keep following the
 * maps (restore, undo). Only after such a change: it reads everything, as the
 * repair of its leftovers does (config.c). 1: no journal yet (the first
 * entry's base is read from the configuration anyway).
 */
static int resync_docs(const struct ts_maps *m, struct ts_journal_change *c, __u32 seed,
		       struct ts_doc *after, struct ts_err *err)
{
	struct ts_journal j;
	char *text;
	int r;

	if (ts_journal_read(m->pin_dir, &j, err))
		return -TS_ERR_RUNTIME;
	if (!j.n) {
		ts_journal_free(&j);
		return 1;
	}
	text = ts_journal_doc(m->pin_dir, &j, j.entries[j.n - 1].seq, err);
	ts_journal_free(&j);
	if (!text)
		return -TS_ERR_RUNTIME;
	ts_doc_free(&c->before);
	r = ts_doc_parse(text, strlen(text), &c->before, err);
	free(text);
	if (r)
		return r;
	c->seed = c->before.seed;
	return ts_doc_read(m, seed, after, err);
}

void ts_journal_after(const struct ts_maps *m, struct ts_journal_change *c)
{
	struct ts_journal_change changed = {};
	struct ts_doc after = {};
	struct ts_plan plan = {};
	struct ts_settings s;
	struct ts_err err = {};
	char *before_text = NULL, *after_text = NULL;
	int r;

	if (!c)
		return;
	r = ts_settings_read(m, &s, &err);
	if (r)
		goto out;
	after.seed = s.seed;
	r = c->resync ? resync_docs(m, c, after.seed, &after, &err) : 1;
	if (r == 1)	/* what this change touched */
		r = c->unread ? ts_fail(&err, TS_ERR_RUNTIME, "a service could not be read "
					"before it changed")
			      : touched_read(m, c, after.seed, &after, &err);
	if (r)
		goto out;
	qsort(c->before.services, c->before.nservices, sizeof(*c->before.services),
	      cmp_service_name);
	qsort(after.services, after.nservices, sizeof(*after.services), cmp_service_name);
	c->before.seed = c->seed;
	r = ts_doc_plan(&c->before, &after, &plan, &err);
	if (r || !plan.nchanges)
		goto out;
	/* the services a change touched but left as they were are not in it */
	for (size_t i = 0; !r && i < plan.nchanges; i++)
		if (plan.changes[i].service[0] && touched_add(&changed, plan.changes[i].service) < 0)
			r = ts_fail(&err, TS_ERR_RUNTIME, "out of memory");
	if (r)
		goto out;
	doc_keep(&c->before, &changed);
	doc_keep(&after, &changed);
	before_text = doc_lines(&c->before);
	after_text = doc_lines(&after);
	r = before_text && after_text ? 0 : ts_fail(&err, TS_ERR_RUNTIME, "out of memory");
	r = r ?: journal_append(m, before_text, after_text, &err);
out:
	if (r)
		fprintf(stderr, "tcpshift: warning: the change is made, but not in the journal "
			"(history, undo and restore do not know it): %s\n", err.msg);
	free(before_text);
	free(after_text);
	ts_plan_free(&plan);
	ts_doc_free(&after);
	change_clear(&changed);
}

void ts_journal_begin(struct ts_maps *m)
{
	ts_journal_change_free(m->journal);
	m->journal = ts_journal_before(m);
	if (m->journal)
		m->journal->resync = m->repair;
}

void ts_journal_commit(struct ts_maps *m)
{
	ts_journal_after(m, m->journal);
	ts_journal_drop(m);
}

void ts_journal_drop(struct ts_maps *m)
{
	ts_journal_change_free(m->journal);
	m->journal = NULL;
}
