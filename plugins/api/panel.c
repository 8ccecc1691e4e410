/* The panel's static files at / of the admin listener (docs/panel.md):
 * GET and HEAD only, from api.panel_dir, and the QR library at
 * PANEL_QRCODE_PATH from api.qrcode_js. A path is served only when it
 * names a regular file inside the directory: no "." or ".." segment, no
 * symbolic link leading out, no directory listing. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "panel.h"

struct api_panel {
	char *dir;       /* realpath of api.panel_dir */
	char *qrcode_js; /* api.qrcode_js, or "" */
};

/* What a browser may do with what it gets from the admin listener: only
 * our own scripts and styles, nothing inline, no framing, no other site. */
#define CSP                                                                               \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

void api_panel_secure(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

struct api_panel *api_panel_new(const char *dir, const char *qrcode_js, char *why, size_t whylen)
{
	struct stat st;
	struct api_panel *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	p->dir = realpath(dir, NULL);
	if (!p->dir || stat(p->dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "api.panel_dir %s is not a directory%s%s", dir,
		         p->dir ? "" : ": ", p->dir ? "" : strerror(errno));
		api_panel_free(p);
		return NULL;
	}
	p->qrcode_js = strdup(qrcode_js ? qrcode_js : "");
	if (!p->qrcode_js) {
		snprintf(why, whylen, "out of memory");
		api_panel_free(p);
		return NULL;
	}
	return p;
}

void api_panel_free(struct api_panel *p)
{
	if (!p)
		return;
	free(p->dir);
	free(p->qrcode_js);
	free(p);
}

static const struct {
	const char *extension, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

/* The content type of a file name; NULL for a kind the panel has none of. */
static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot, types[i].extension))
			return types[i].type;
	return NULL;
}

int api_panel_path_ok(const char *url)
{
	if (!url || url[0] != '/')
		return 0;
	for (const char *seg = url + 1;;) {
		size_t n = strcspn(seg, "/");
		if ((n == 1 && seg[0] == '.') || (n == 2 && !strncmp(seg, "..", 2)))
			return 0;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f || seg[i] == '\\' ||
			    seg[i] == '%')
				return 0;
		if (!seg[n])
			return 1;
		seg += n + 1;
	}
}

/* The file of a URL path, opened: -1 when there is none to serve. */
static int open_file(const struct api_panel *p, const char *url, const char **type)
{
	char path[PATH_MAX];
	struct stat st;
	const char *name = !strcmp(url, "/") ? "/index.html" : url;
	if (!strcmp(url, PANEL_QRCODE_PATH)) {
		if (!*p->qrcode_js)
			return -1;
		snprintf(path, sizeof(path), "%s", p->qrcode_js);
	} else {
		if (!api_panel_path_ok(url) ||
		    (size_t)snprintf(path, sizeof(path), "%s%s", p->dir, name) >= sizeof(path))
			return -1;
		/* a symbolic link may point anywhere: what it resolves to must
		 * still be inside the directory */
		char *real = realpath(path, NULL);
		size_t n = strlen(p->dir);
		int inside = real && !strncmp(real, p->dir, n) && real[n] == '/';
		free(real);
		if (!inside)
			return -1;
	}
	if (!(*type = type_of(name)))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1; /* a directory is not listed */
	}
	return fd;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                   const char *allow)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	api_panel_secure(resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result api_panel_answer(const struct api_panel *p, struct MHD_Connection *conn,
                                 const char *url, const char *method)
{
	struct stat st;
	const char *type = NULL;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
		                   "GET, HEAD");
	int fd = p ? open_file(p, url, &type) : -1;
	if (fd < 0)
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
	if (fstat(fd, &st)) {
		close(fd);
		return MHD_NO;
	}
	struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	api_panel_secure(resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	/* small files: asked again each time, so an upgrade shows at once */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}
