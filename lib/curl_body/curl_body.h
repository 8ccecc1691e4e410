/* An HTTP answer as libcurl hands it over (CURLOPT_WRITEFUNCTION), kept
 * in one growing NUL-terminated string up to a limit: the one way every
 * HTTP client of the tree collects its answers (the device client's API
 * calls, the OIDC device flow, the gateway's OIDC provider, Vault). */
#ifndef MG_CURL_BODY_H
#define MG_CURL_BODY_H

#include <stdbool.h>
#include <stddef.h>

struct curl_body {
	char *data;   /* malloc'd, NUL-terminated; NULL until the first byte */
	size_t len;   /* bytes in data, without the NUL */
	size_t max;   /* the most bytes kept: a longer answer stops the transfer */
	bool too_big; /* set when it did */
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA a struct curl_body:
 * returns what it kept, 0 (the transfer stops) past max or out of
 * memory. */
size_t curl_body_collect(char *ptr, size_t size, size_t n, void *body);

#endif
