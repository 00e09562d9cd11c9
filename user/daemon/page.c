// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's status page: one HTML document (user/daemon/status.html, made
 * a C string at build time) with its style and script inline, so that it
 * needs nothing else, and a Content-Security-Policy that allows exactly
 * those two by their SHA-256: a name that slipped into the document as
 * markup could not run a script of its own, nor load anything from elsewhere.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "daemon.h"
#include "status_page.h"	/* static const char ts_status_page[] */

const char *ts_page(size_t *len)
{
	*len = sizeof(ts_status_page) - 1;
	return ts_status_page;
}

/* "'sha256-BASE64'" of the text between open and close in the page. */
static int element_hash(const char *open, const char *close, char *out, size_t len)
{
	const char *start = strstr(ts_status_page, open), *end;
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned char b64[4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1];

	if (!start || !(end = strstr(start += strlen(open), close)))
		return -1;
	SHA256((const unsigned char *)start, (size_t)(end - start), md);
	EVP_EncodeBlock(b64, md, SHA256_DIGEST_LENGTH);
	snprintf(out, len, "'sha256-%s'", b64);
	return 0;
}

int ts_page_csp(char *out, size_t len)
{
	char script[64], style[64];

	if (element_hash("<script>", "</script>", script, sizeof(script)) ||
	    element_hash("<style>", "</style>", style, sizeof(style)))
		return -1;
	snprintf(out, len,
		 "default-src 'self'; script-src %s; style-src %s; img-src 'self' data:; "
		 "connect-src 'self'; base-uri 'none'; form-action 'none'; "
		 "frame-ancestors 'none'",
		 script, style);
	return 0;
}
