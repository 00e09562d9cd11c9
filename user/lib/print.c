// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The output writer: one call per value, text or JSON (see print.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "print.h"

/* Deeper than any command's output (stats: 9 levels). */
#define PRINT_MAX_DEPTH 16

static struct {
	FILE		*out;
	bool		json;
	unsigned int	flags;
	/* the objects and arrays open, outermost first; each is attached to
	 * its parent when it closes */
	json_object	*open[PRINT_MAX_DEPTH];
	const char	*keys[PRINT_MAX_DEPTH];	/* its key in the parent */
	int		depth;
	/* with PRINT_F_STREAM, the outermost open containers written as they
	 * fill: stream[d] for the one at depth d, members[d] written so far */
	bool		stream[PRINT_MAX_DEPTH];
	size_t		members[PRINT_MAX_DEPTH];
} w = { .depth = 0 };

/* What is still open is dropped: no partial document. */
static void drop_open(void)
{
	while (w.depth > 0) {
		w.depth--;
		json_object_put(w.open[w.depth]);
		free((char *)w.keys[w.depth]);
	}
}

void print_start(FILE *out, bool json, unsigned int flags)
{
	drop_open();
	w.out = out;
	w.json = json;
	w.flags = flags;
}

int print_end(void)
{
	FILE *out = w.out;

	drop_open();
	w.out = NULL;
	if (out && (fflush(out) || ferror(out))) {
		fprintf(stderr, "tcpshift: cannot write the output: %s\n",
			strerror(errno ? errno : EIO));
		return 1;
	}
	return 0;
}

bool print_is_json(void)
{
	return w.json;
}

static bool wants(enum print_type t)
{
	return w.out && (w.json ? t & PRINT_JSON : t & PRINT_FP);
}

/* The length of the UTF-8 sequence at p, 0 when it is not one (overlong
 * forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* A JSON string of s: json-c escapes quotes, backslashes and control
 * characters; what is not UTF-8 becomes U+FFFD. */
static json_object *json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	json_object *o;
	char *fixed, *q;
	size_t n;

	for (; *p; p += n)
		if (!(n = utf8_len(p)))
			break;
	if (!*p)
		return json_object_new_string(s);
	fixed = malloc(strlen(s) * 3 + 1);
	if (!fixed)
		return NULL;
	for (p = (const unsigned char *)s, q = fixed; *p; p += n) {
		n = utf8_len(p);
		if (n) {
			memcpy(q, p, n);
			q += n;
		} else {
			memcpy(q, "\xef\xbf\xbd", 3);
			q += 3;
			n = 1;
		}
	}
	*q = '\0';
	o = json_object_new_string(fixed);
	free(fixed);
	return o;
}

static bool text_escaped(unsigned char c)
{
	return c < 0x20 || c >= 0x7f || c == '\\';
}

static void write_json(json_object *o)
{
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						    JSON_C_TO_STRING_NOSLASHESCAPE),
	      w.out);
}

/* Is a container about to open at the current depth streamed: the
 * outermost, or an array directly in an outermost streamed object? */
static bool streams(json_object *o)
{
	if (!(w.flags & PRINT_F_STREAM))
		return false;
	if (!w.depth)
		return true;
	return w.depth == 1 && w.stream[0] && json_object_is_type(w.open[0], json_type_object) &&
	       json_object_is_type(o, json_type_array);
}

/* Before a member of the streamed container at depth d: its separator and,
 * in an object, its key. */
static void stream_member(int d, const char *key)
{
	if (w.members[d]++)
		fputc(',', w.out);
	if (json_object_is_type(w.open[d], json_type_object)) {
		json_object *k = json_object_new_string(key ? key : "");

		write_json(k);
		json_object_put(k);
		fputc(':', w.out);
	}
}

/* Put v in the innermost open object or array (v may be NULL: null). */
static void attach(const char *key, json_object *v)
{
	json_object *parent;

	if (!w.depth) {
		/* a bare value is a document of its own */
		write_json(v);
		fputc('\n', w.out);
		json_object_put(v);
		return;
	}
	if (w.stream[w.depth - 1]) {
		stream_member(w.depth - 1, key);
		write_json(v);
		json_object_put(v);
		return;
	}
	parent = w.open[w.depth - 1];
	if (json_object_is_type(parent, json_type_array))
		json_object_array_add(parent, v);
	else
		json_object_object_add(parent, key ? key : "", v);
}

static void open_container(const char *key, json_object *o)
{
	if (!w.json || !w.out) {
		json_object_put(o);
		return;
	}
	if (w.depth == PRINT_MAX_DEPTH) {
		/* a programming error, not an input's */
		fprintf(stderr, "tcpshift: output nested too deep\n");
		abort();
	}
	w.stream[w.depth] = streams(o);
	w.members[w.depth] = 0;
	if (w.stream[w.depth]) {
		if (w.depth)
			stream_member(w.depth - 1, key);
		fputc(json_object_is_type(o, json_type_array) ? '[' : '{', w.out);
	}
	w.keys[w.depth] = key ? strdup(key) : NULL;
	w.open[w.depth++] = o;
}

static void close_container(void)
{
	json_object *o;
	char *key;

	if (!w.json || !w.out || !w.depth)
		return;
	o = w.open[--w.depth];
	key = (char *)w.keys[w.depth];
	if (w.stream[w.depth]) {
		fputc(json_object_is_type(o, json_type_array) ? ']' : '}', w.out);
		if (!w.depth)
			fputc('\n', w.out);
		json_object_put(o);
	} else {
		attach(key, o);
	}
	free(key);
}

void print_open_object(const char *key)
{
	open_container(key, w.json ? json_object_new_object() : NULL);
}

void print_open_array(const char *key)
{
	open_container(key, w.json ? json_object_new_array() : NULL);
}

void print_close_object(void)
{
	close_container();
}

void print_close_array(void)
{
	close_container();
}

void print_string(enum print_type t, const char *key, const char *fmt, const char *value)
{
	const unsigned char *p;
	char *safe, *q;

	if (!wants(t))
		return;
	if (w.json) {
		attach(key, value ? json_string(value) : NULL);
		return;
	}
	if (!fmt)
		return;
	if (!value) {
		fprintf(w.out, fmt, "-");
		return;
	}
	for (p = (const unsigned char *)value; *p && !text_escaped(*p); p++)
		;
	if (!*p) {
		fprintf(w.out, fmt, value);
		return;
	}
	safe = malloc(strlen(value) * 4 + 1);
	if (!safe) {
		fprintf(w.out, fmt, "?");
		return;
	}
	for (p = (const unsigned char *)value, q = safe; *p; p++) {
		if (text_escaped(*p))
			q += sprintf(q, "\\x%02x", *p);
		else
			*q++ = (char)*p;
	}
	*q = '\0';
	fprintf(w.out, fmt, safe);
	free(safe);
}

void print_u64(enum print_type t, const char *key, const char *fmt, unsigned long long value)
{
	if (!wants(t))
		return;
	if (w.json)
		attach(key, json_object_new_int64((int64_t)value));
	else if (fmt)
		fprintf(w.out, fmt, value);
}

void print_double(enum print_type t, const char *key, const char *fmt, double value)
{
	if (!wants(t))
		return;
	if (w.json)
		attach(key, json_object_new_double(value));
	else if (fmt)
		fprintf(w.out, fmt, value);
}

/* "%.*f" without trailing zeros: 12.5, 3 (the shortest form of the number). */
static void decimal_text(char *buf, size_t len, double value, int decimals)
{
	snprintf(buf, len, "%.*f", decimals, value);
	if (strchr(buf, '.')) {
		char *end = buf + strlen(buf) - 1;

		while (*end == '0')
			*end-- = '\0';
		if (*end == '.')
			*end = '\0';
	}
}

void print_decimal(enum print_type t, const char *key, const char *fmt, double value,
		   int decimals)
{
	char json[48];

	if (!wants(t))
		return;
	if (!w.json) {
		if (fmt)
			fprintf(w.out, fmt, value);
		return;
	}
	decimal_text(json, sizeof(json), value, decimals);
	attach(key, json_object_new_double_s(value, json));
}

static int write_text(json_object *o, struct printbuf *pb, int level, int flags)
{
	const char *text = json_object_get_userdata(o);

	return printbuf_memappend(pb, text, (int)strlen(text));
}

void print_decimals(const char *key, const float *values, size_t n, int decimals)
{
	size_t len = 3 + n * 24, at = 1;
	char *text;
	json_object *o;

	if (!w.json)
		return;
	/* one json-c object for the whole array, which writes its own text: a
	 * value each would cost an allocation each (180 samples of 4,096
	 * backends are 737,280) */
	text = malloc(len);
	o = text ? json_object_new_array() : NULL;
	if (!o) {
		free(text);
		print_null(key);
		return;
	}
	text[0] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			text[at++] = ',';
		decimal_text(text + at, len - at, values[i], decimals);
		at += strlen(text + at);
	}
	text[at++] = ']';
	text[at] = '\0';
	json_object_set_serializer(o, write_text, text, json_object_free_userdata);
	attach(key, o);
}

void print_bool(enum print_type t, const char *key, const char *fmt, bool value)
{
	if (!wants(t))
		return;
	if (w.json)
		attach(key, json_object_new_boolean(value));
	else if (fmt)
		fprintf(w.out, fmt, value ? "true" : "false");
}

void print_null(const char *key)
{
	if (wants(PRINT_JSON))
		attach(key, NULL);
}

void print_json(const char *key, json_object *value)
{
	if (wants(PRINT_JSON))
		attach(key, value);
	else
		json_object_put(value);
}

void print_text(const char *fmt, ...)
{
	va_list ap;

	if (!wants(PRINT_FP))
		return;
	va_start(ap, fmt);
	vfprintf(w.out, fmt, ap);
	va_end(ap);
}
