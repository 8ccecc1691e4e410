/* Small parsers shared by the services: names, request members. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "preauth.h"

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
