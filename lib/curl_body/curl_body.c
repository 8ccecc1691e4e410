#include "curl_body.h"

#include <stdlib.h>
#include <string.h>

size_t curl_body_collect(char *ptr, size_t size, size_t n, void *body)
{
	struct curl_body *b = body;
	size_t add = size * n;
	if (b->len + add > b->max) {
		b->too_big = true;
		return 0;
	}
	char *grown = realloc(b->data, b->len + add + 1);
	if (!grown)
		return 0;
	memcpy(grown + b->len, ptr, add);
	b->data = grown;
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}
