/* A config for the official WireGuard apps: plain wg-quick text in a file
 * of mode 0600, or a QR code on the terminal for the mobile apps. */
#ifndef MESHGATE_CLIENT_EXPORT_H
#define MESHGATE_CLIENT_EXPORT_H

#include <stdio.h>

#include "config_file.h"
#include "err.h"

/* Writes the profile as a plain wg-quick config (no meshgate comments). */
int cl_export_write(const char *path, const struct cl_profile *p, struct cl_err *err);

/* Prints text as a QR code of UTF-8 half blocks, with explicit ANSI colours
 * (black on white) so it scans on dark and light terminals alike. */
int cl_qr_print(FILE *out, const char *text, struct cl_err *err);

#endif
