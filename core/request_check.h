/* The one check of a bus request's fields.
 *
 * A service declares its request as a table of struct mg_field
 * (sdk/include/meshgate/api.h) and calls mg_request_check(); the daemon's
 * ops table and the mock core's both point here, so a plugin's unit tests
 * refuse what the daemon refuses, with the same words. Thread-free: any
 * thread may call it. */
#ifndef MG_CORE_REQUEST_CHECK_H
#define MG_CORE_REQUEST_CHECK_H

#include <jansson.h>

#include <meshgate/api.h>

/* NULL when `request` fits `fields`, else a new mg_field_error reply
 * naming the first fault; the rules are those of mg_request_check. */
json_t *request_check(json_t *request, const struct mg_field *fields);

#endif
