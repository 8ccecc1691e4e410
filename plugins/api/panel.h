/* The panel's static files, served at / of the admin listener. */
#ifndef MG_API_PANEL_H
#define MG_API_PANEL_H

#include <stddef.h>

#include <microhttpd.h>

/* Where the QR library (api.qrcode_js) is served. */
#define PANEL_QRCODE_PATH "/lib/qrcode.js"

struct api_panel;

/* The panel of the directory `dir` and the QR library file `qrcode_js`
 * ("" or NULL: none). NULL with the reason in why when dir is no
 * directory. */
struct api_panel *api_panel_new(const char *dir, const char *qrcode_js, char *why, size_t whylen);
void api_panel_free(struct api_panel *panel);

/* Answers a request for a file (any path but the API's): 200 with the
 * file, 404, or 405 for a method other than GET and HEAD. `panel` NULL:
 * every path is 404. */
enum MHD_Result api_panel_answer(const struct api_panel *panel, struct MHD_Connection *conn,
                                 const char *url, const char *method);

/* Is a URL path one the panel may serve (no "." or ".." segment, no
 * control character, backslash or '%')? */
int api_panel_path_ok(const char *url);

/* The headers every answer of the admin listener carries: the
 * Content-Security-Policy, nosniff, no referrer. */
void api_panel_secure(struct MHD_Response *resp);

#endif
