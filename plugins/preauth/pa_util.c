/* Small parsers shared by the services: durations, names, request members. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "preauth.h"

/* Ten years: past that a TTL is a typo, and the product stays far from
 * overflowing 64 bits. */
#define DURATION_MAX_MS (3650ULL * 86400 * 1000)

int pa_duration_parse(const char *text, uint64_t *ms, char *err, size_t errlen)
{
	uint64_t n = 0, unit;
	size_t i = 0;

	if (!text)
		text = "";
	/* Strict: digits without a leading zero, then exactly one unit. A
	 * silent "24" meaning seconds or hours would be a trap. */
	while (text[i] >= '0' && text[i] <= '9' && i < 12)
		n = n * 10 + (uint64_t)(text[i++] - '0');
	switch (i && text[0] != '0' ? text[i] : '\0') {
	case 's':
		unit = 1000;
		break;
	case 'm':
		unit = 60 * 1000;
		break;
	case 'h':
		unit = 3600 * 1000;
		break;
	case 'd':
		unit = 86400 * 1000;
		break;
	default:
		unit = 0;
	}
	if (!unit || text[i + 1] != '\0') {
		snprintf(err, errlen,
		         "invalid duration \"%.40s\": write a positive number and one unit s, m, h "
		         "or d (\"30s\", \"10m\", \"24h\", \"7d\")",
		         text);
		return -EINVAL;
	}
	if (n > DURATION_MAX_MS / unit) {
		snprintf(err, errlen, "duration \"%.40s\" is longer than 3650d", text);
		return -EINVAL;
	}
	*ms = n * unit;
	return 0;
}

int pa_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > PA_NAME_MAX || name[0] == '-' || name[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-'))
			return 0;
	return 1;
}

int pa_role_known(struct pa *pa, const char *role)
{
	size_t i;
	json_t *r;
	json_array_foreach(pa->cfg.roles, i,
	                   r) if (role && !strcmp(json_string_value(r), role)) return 1;
	return 0;
}

void pa_roles_text(struct pa *pa, char *buf, size_t len)
{
	size_t i, used = 0;
	json_t *r;
	buf[0] = '\0';
	json_array_foreach(pa->cfg.roles, i, r)
	{
		int n =
		    snprintf(buf + used, len - used, "%s%s", i ? ", " : "", json_string_value(r));
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

const char *pa_str(json_t *request, const char *name)
{
	return json_string_value(json_object_get(request, name));
}

uint64_t pa_now_s(struct pa *pa)
{
	return mg_now_ms(pa->ctx) / 1000;
}
