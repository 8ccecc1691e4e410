/* Names: each command is one request to the dns plugin (docs/dns.md). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void print_record(json_t *reply)
{
	json_t *a;
	size_t i;
	printf("%s", ctl_str(reply, "fqdn"));
	json_array_foreach(json_object_get(reply, "addresses"), i, a)
	{
		printf(" %s", json_string_value(a));
	}
	printf("\n");
}

static int dns_add(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	if (argc != 2)
		return ctl_fail("usage: meshgatectl dns add NAME ADDRESS");
	json_t *request = json_pack("{s:s, s:s}", "name", argv[0], "address", argv[1]);
	int rc = ctl_call(ctl, "dns.add", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json)
		print_record(reply);
	json_decref(reply);
	return 0;
}

static int dns_del(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply;
	if (argc != 1 && argc != 2)
		return ctl_fail("usage: meshgatectl dns del NAME [ADDRESS]");
	json_t *request = json_pack("{s:s}", "name", argv[0]);
	if (argc == 2)
		json_object_set_new(request, "address", json_string(argv[1]));
	int rc = ctl_call(ctl, "dns.del", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json)
		printf("deleted %lld address(es) of %s\n",
		       (long long)json_integer_value(json_object_get(reply, "deleted")),
		       ctl_str(reply, "fqdn"));
	json_decref(reply);
	return 0;
}

static int dns_list(struct ctl *ctl, int argc, char **argv)
{
	const char *source = ctl_take_option(&argc, argv, "--source");
	json_t *reply, *r, *request = json_object();
	size_t i;
	if (argc)
		return ctl_fail("usage: meshgatectl dns list [--source config|runtime|device]");
	if (source)
		json_object_set_new(request, "source", json_string(source));
	int rc = ctl_call(ctl, "dns.list", request, &reply);
	json_decref(request);
	if (rc)
		return 1;
	if (!ctl->json) {
		printf("%-40s %-5s %-40s %-8s %s\n", "NAME", "TYPE", "ADDRESS", "SOURCE", "DEVICE");
		json_array_foreach(json_object_get(reply, "records"), i, r)
		{
			printf("%-40s %-5s %-40s %-8s %s\n", ctl_str(r, "name"), ctl_str(r, "type"),
			       ctl_str(r, "address"), ctl_str(r, "source"),
			       json_object_get(r, "device") ? ctl_str(r, "device") : "");
		}
	}
	json_decref(reply);
	return 0;
}

static int dns_stats(struct ctl *ctl, int argc, char **argv)
{
	json_t *reply, *v;
	const char *key;
	(void)argv;
	if (argc)
		return ctl_fail("usage: meshgatectl dns stats");
	if (ctl_call(ctl, "dns.stats", NULL, &reply))
		return 1;
	if (!ctl->json)
		json_object_foreach(reply, key, v)
		{
			if (json_is_integer(v))
				printf("%-18s %lld\n", key, (long long)json_integer_value(v));
			else if (json_is_string(v))
				printf("%-18s %s\n", key, json_string_value(v));
			else if (json_is_array(v)) {
				json_t *e;
				size_t i;
				printf("%-18s", key);
				json_array_foreach(v, i, e)
				{
					printf(" %s", json_string_value(e));
				}
				printf("\n");
			}
		}
	json_decref(reply);
	return 0;
}

const struct ctl_command ctl_dns_commands[] = {
    {"dns add", "dns add NAME ADDRESS", dns_add},
    {"dns del", "dns del NAME [ADDRESS]", dns_del},
    {"dns list", "dns list [--source config|runtime|device]", dns_list},
    {"dns stats", "dns stats", dns_stats},
    {NULL, NULL, NULL},
};
