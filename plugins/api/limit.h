/* Failed attempts limited per source address (the admin API's tokens, the
 * devices' identity logins): a token bucket of `per_minute` failures
 * refilled over a minute; an address with an empty bucket is refused
 * before it is heard. The buckets are a fixed table (an attacker with
 * many addresses cannot make us spend memory), slots chosen by a keyed
 * hash; a full bucket (an address that has not failed lately) gives its
 * slot to a newcomer, an emptying one never does: a newcomer then shares
 * it, and its limit. Any thread. */
#ifndef MG_API_LIMIT_H
#define MG_API_LIMIT_H

#include <meshgate/meshgate.h>

struct api_limit;

struct api_limit *api_limit_new(mg_ctx *ctx, unsigned per_minute);
void api_limit_free(struct api_limit *limit);
/* May `source` try now? */
int api_limit_may_try(struct api_limit *limit, const char *source);
/* `source` failed once more. */
void api_limit_failed(struct api_limit *limit, const char *source);

#endif
