#include "request_check.h"

#include <string.h>

static const char *type_name(enum mg_field_type type)
{
	switch (type) {
	case MG_FIELD_STRING:
		return "a string";
	case MG_FIELD_INT:
		return "an integer";
	case MG_FIELD_BOOL:
		return "a boolean";
	case MG_FIELD_STRINGS:
		return "an array of strings";
	case MG_FIELD_ARRAY:
		return "an array";
	case MG_FIELD_OBJECT:
		return "an object";
	}
	return "?";
}

/* A string without a NUL inside, which C code reading it would take for
 * its end. */
static int plain_string(json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int strings(json_t *array)
{
	size_t i;
	json_t *item;
	if (!json_is_array(array))
		return 0;
	json_array_foreach(array, i, item)
	{
		if (!plain_string(item))
			return 0;
	}
	return 1;
}

static int has_type(json_t *v, enum mg_field_type type)
{
	switch (type) {
	case MG_FIELD_STRING:
		return plain_string(v);
	case MG_FIELD_INT:
		return json_is_integer(v);
	case MG_FIELD_BOOL:
		return json_is_boolean(v);
	case MG_FIELD_STRINGS:
		return strings(v);
	case MG_FIELD_ARRAY:
		return json_is_array(v);
	case MG_FIELD_OBJECT:
		return json_is_object(v);
	}
	return 0;
}

static json_t *type_error(const char *name, json_t *v, enum mg_field_type type)
{
	if (type == MG_FIELD_STRING && json_is_string(v))
		return mg_field_error(name, "'%s' contains a NUL character", name);
	return mg_field_error(name, "'%s' must be %s", name, type_name(type));
}

/* A string's length in bytes, an integer's value, an array's items. */
static json_t *bounds_error(const struct mg_field *f, json_t *v)
{
	long long n;
	if (!f->min && !f->max)
		return NULL;
	switch (f->type) {
	case MG_FIELD_STRING:
		n = (long long)json_string_length(v);
		break;
	case MG_FIELD_INT:
		n = (long long)json_integer_value(v);
		break;
	case MG_FIELD_STRINGS:
	case MG_FIELD_ARRAY:
		n = (long long)json_array_size(v);
		break;
	default:
		return NULL;
	}
	if (n >= f->min && n <= f->max)
		return NULL;
	if (f->type == MG_FIELD_INT)
		return mg_field_error(f->name, "'%s' must be from %lld to %lld", f->name, f->min,
		                      f->max);
	const char *unit = f->type == MG_FIELD_STRING ? "bytes long" : "items";
	if (f->min == f->max)
		return mg_field_error(f->name, "'%s' must be %lld %s", f->name, f->min, unit);
	return mg_field_error(f->name, "'%s' must be %lld to %lld %s", f->name, f->min, f->max,
	                      unit);
}

static const struct mg_field *find_field(const struct mg_field *fields, const char *name)
{
	for (; fields && fields->name; fields++)
		if (!strcmp(fields->name, name))
			return fields;
	return NULL;
}

json_t *request_check(json_t *request, const struct mg_field *fields)
{
	const char *name;
	json_t *v, *error;

	/* NULL (no payload) counts as {}: jansson iterates and finds nothing */
	if (request && !json_is_object(request))
		return mg_field_error(NULL, "the request must be a JSON object");
	/* members first: a misspelt name is reported as unknown rather than
	 * as the declared one missing */
	json_object_foreach(request, name, v)
	{
		const struct mg_field *f = find_field(fields, name);
		if (!f && !strcmp(name, "v")) {
			if (!json_is_integer(v))
				return mg_field_error(name, "'v' must be an integer");
			continue;
		}
		if (!f) /* the name is anybody's: cut, and whole characters only */
			return mg_field_error(name, "unknown field '%.*s'",
			                      (int)mg_utf8_prefix(name, 64), name);
		if (!has_type(v, f->type))
			return type_error(name, v, f->type);
		if ((error = bounds_error(f, v)))
			return error;
	}
	for (; fields && fields->name; fields++)
		if (fields->required && !json_object_get(request, fields->name))
			return mg_field_error(fields->name, "missing field '%s'", fields->name);
	return NULL;
}
