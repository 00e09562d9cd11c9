/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The output writer of the one-shot commands: a command describes each value
 * once, and the writer prints it as text for people or, with -j, as a member
 * of one JSON document (built with json-c, which escapes the strings).
 *
 *	print_start(stdout, ctx->json, 0);
 *	print_open_object(NULL);
 *	print_string(PRINT_ANY, "name", "service %s", name);
 *	print_u64(PRINT_ANY, "table_size", " (table %llu)\n", size);
 *	print_close_object();
 *	print_end();
 *
 * prints "service web (table 16381)" or {"name":"web","table_size":16381}.
 * PRINT_FP values are only printed as text, PRINT_JSON ones only in JSON; a
 * NULL fmt prints nothing as text. Objects and arrays only shape the JSON.
 * The document is written, one line, when its outermost object or array
 * closes; print_end() drops one left open (a command that failed half-way
 * prints no partial document).
 *
 * Strings are untrusted (names come from pinned maps anyone with the rights
 * may write): as text, control characters, DEL, bytes above 0x7f and the
 * backslash are written as \xNN, so that a value never starts a line of its
 * own or moves the cursor; in JSON, bytes that are not UTF-8 become U+FFFD.
 */
#ifndef TCPSHIFT_PRINT_H
#define TCPSHIFT_PRINT_H

#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>

enum print_type {
	PRINT_FP	= 1,	/* text only */
	PRINT_JSON	= 2,	/* JSON only */
	PRINT_ANY	= PRINT_FP | PRINT_JSON,
};

/* print_start flags */
enum {
	/* The outermost container is written member by member as each
	 * closes, and so is each array directly in an outermost object (a
	 * million flows, 65,536 services' stats, need no tree in memory). An
	 * error half-way leaves what was written. */
	PRINT_F_STREAM	= 1 << 0,
};

/* Begin the output of one command to out: JSON when json, text otherwise. */
void print_start(FILE *out, bool json, unsigned int flags);
/* End it: what is still open is dropped. Returns 0, or 1 (TS_ERR_RUNTIME)
 * after saying so on stderr when writing to out failed. */
int print_end(void);
/* Whether the output is JSON. */
bool print_is_json(void);

/* Objects and arrays: key names the member in the enclosing object; NULL
 * for the outermost one and for elements of an array. */
void print_open_object(const char *key);
void print_close_object(void);
void print_open_array(const char *key);
void print_close_array(void);

/* One value each. In an array the key is ignored. A NULL string is JSON null
 * and "-" as text. */
void print_string(enum print_type t, const char *key, const char *fmt, const char *value);
void print_u64(enum print_type t, const char *key, const char *fmt, unsigned long long value);
void print_double(enum print_type t, const char *key, const char *fmt, double value);
/* The same, written in JSON with at most decimals digits after the point
 * (json-c writes a double's every digit: 12.300000000000001). */
void print_decimal(enum print_type t, const char *key, const char *fmt, double value,
		   int decimals);
/* JSON only: an array of n numbers, each as print_decimal writes it. */
void print_decimals(const char *key, const float *values, size_t n, int decimals);
/* Text: fmt gets "true" or "false". */
void print_bool(enum print_type t, const char *key, const char *fmt, bool value);
void print_null(const char *key);
/* A value built by json-c elsewhere (JSON only; taken over, freed as text). */
void print_json(const char *key, json_object *value);
/* Text only, printf-like: labels, headers, padding; never untrusted strings
 * (give those to print_string). */
void print_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* TCPSHIFT_PRINT_H */
