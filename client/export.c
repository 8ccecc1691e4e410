#include "export.h"

#include <qrencode.h>
#include <string.h>

int cl_export_write(const char *path, const struct cl_profile *p, struct cl_err *err)
{
	char *text = cl_profile_render(p, false);
	if (!text)
		return cl_fail(err, CL_EXIT_FAILURE, "cannot render the config");
	int rc = cl_write_private_file(path, text, err);
	cl_profile_text_free(text);
	return rc;
}

#define QR_MARGIN 2 /* quiet zone, in modules */

static int dark(const QRcode *qr, int x, int y)
{
	x -= QR_MARGIN;
	y -= QR_MARGIN;
	if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
		return 0;
	return qr->data[y * qr->width + x] & 1;
}

int cl_qr_print(FILE *out, const char *text, struct cl_err *err)
{
	/* Foreground white, background black: a half block draws the light
	 * modules, so the code does not depend on the terminal's colours. */
	static const char *const cell[4] = {
	    "\xe2\x96\x88", /* both light: full block */
	    "\xe2\x96\x80", /* bottom dark: upper half */
	    "\xe2\x96\x84", /* top dark: lower half */
	    " ",            /* both dark */
	};
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	if (!qr)
		return cl_fail(err, CL_EXIT_FAILURE, "the config is too large for a QR code");
	int size = qr->width + 2 * QR_MARGIN;
	for (int y = 0; y < size; y += 2) {
		fputs("\033[40;97m", out);
		for (int x = 0; x < size; x++)
			fputs(cell[dark(qr, x, y) << 1 | dark(qr, x, y + 1)], out);
		fputs("\033[0m\n", out);
	}
	memset(qr->data, 0, (size_t)qr->width * (size_t)qr->width);
	QRcode_free(qr);
	return 0;
}
