/* ipset and conntrack through nfnetlink (libmnl), in-process: one
 * device's change costs a message and its ACK, not a process. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "fw.h"

struct fw_nl {
	struct mnl_socket *sock;
	unsigned portid;
	unsigned seq;
	char buf[32768]; /* the largest message a dump sends */
};

int fw_nl_open(struct fw_nl **out)
{
	struct fw_nl *nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int rc = -errno;
		fw_nl_close(nl);
		return rc;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (unsigned)time(NULL);
	*out = nl;
	return 0;
}

void fw_nl_close(struct fw_nl *nl)
{
	if (!nl)
		return;
	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl);
}

static struct nlmsghdr *header(struct fw_nl *nl, int subsys, int cmd, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
	nlh->nlmsg_type = (uint16_t)((subsys << 8) | cmd);
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = ++nl->seq;
	struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(0);
	if (subsys == NFNL_SUBSYS_IPSET)
		mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
	return nlh;
}

/* Sends nlh and runs cb on every answer until the ACK or the end of the
 * dump. 0 or a negative errno (the kernel's). */
static int talk(struct fw_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	unsigned seq = nlh->nlmsg_seq;
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
		if (n < 0)
			return -errno;
		int rc = mnl_cb_run(nl->buf, (size_t)n, seq, nl->portid, cb, data);
		if (rc == MNL_CB_ERROR)
			return errno ? -errno : -EIO;
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

/* ---- ipset ---- */

static int set_elem(struct fw_nl *nl, int cmd, const char *set, uint32_t addr)
{
	if (strlen(set) >= IPSET_MAXNAMELEN)
		return -EINVAL;
	/* no NLM_F_EXCL: adding a member twice or removing an absent one is fine */
	struct nlmsghdr *nlh = header(nl, NFNL_SUBSYS_IPSET, cmd, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, set);
	struct nlattr *data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA);
	struct nlattr *ip = mnl_attr_nest_start(nlh, IPSET_ATTR_IP);
	mnl_attr_put_u32(nlh, IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, htonl(addr));
	mnl_attr_nest_end(nlh, ip);
	mnl_attr_nest_end(nlh, data);
	return talk(nl, nlh, NULL, NULL);
}

int fw_nl_set_add(struct fw_nl *nl, const char *set, uint32_t addr)
{
	return set_elem(nl, IPSET_CMD_ADD, set, addr);
}

int fw_nl_set_del(struct fw_nl *nl, const char *set, uint32_t addr)
{
	return set_elem(nl, IPSET_CMD_DEL, set, addr);
}

int fw_nl_set_test(struct fw_nl *nl, const char *set, uint32_t addr)
{
	int rc = set_elem(nl, IPSET_CMD_TEST, set, addr);
	return rc == 0 ? 1 : rc == -IPSET_ERR_EXIST ? 0 : rc;
}

int fw_nl_set_destroy(struct fw_nl *nl, const char *set)
{
	if (strlen(set) >= IPSET_MAXNAMELEN)
		return -EINVAL;
	struct nlmsghdr *nlh = header(nl, NFNL_SUBSYS_IPSET, IPSET_CMD_DESTROY, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, set);
	int rc = talk(nl, nlh, NULL, NULL);
	return rc == -IPSET_ERR_BUSY ? -EBUSY : rc;
}

struct name_list {
	const char *prefix;
	char **names;
	size_t n;
	int rc;
};

static int name_attr(const struct nlattr *attr, void *data)
{
	struct name_list *l = data;
	if (mnl_attr_get_type(attr) != IPSET_ATTR_SETNAME ||
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_OK;
	const char *name = mnl_attr_get_str(attr);
	if (strncmp(name, l->prefix, strlen(l->prefix)))
		return MNL_CB_OK;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return MNL_CB_OK; /* a large set comes in several messages */
	char **grown = realloc(l->names, (l->n + 2) * sizeof(*grown));
	if (!grown || !(grown[l->n] = strdup(name))) {
		if (grown)
			l->names = grown;
		l->rc = -ENOMEM;
		return MNL_CB_ERROR;
	}
	l->names = grown;
	l->names[++l->n] = NULL;
	return MNL_CB_OK;
}

static int name_msg(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct nfgenmsg), name_attr, data);
}

int fw_nl_set_list(struct fw_nl *nl, const char *prefix, char ***names)
{
	struct name_list l = {prefix, calloc(1, sizeof(char *)), 0, 0};
	if (!l.names)
		return -ENOMEM;
	struct nlmsghdr *nlh = header(nl, NFNL_SUBSYS_IPSET, IPSET_CMD_LIST, NLM_F_DUMP);
	mnl_attr_put_u32(nlh, IPSET_ATTR_FLAGS | NLA_F_NET_BYTEORDER,
	                 htonl(IPSET_FLAG_LIST_SETNAME));
	int rc = talk(nl, nlh, name_msg, &l);
	if (l.rc)
		rc = l.rc;
	if (rc) {
		fw_strv_free(l.names);
		return rc;
	}
	*names = l.names;
	return 0;
}

/* ---- conntrack ---- */

struct ct_entry {
	char tuple[256]; /* the CTA_TUPLE_ORIG attribute, copied */
	uint16_t zone;
	int has_zone;
};

struct ct_scan {
	const uint32_t *addrs; /* host order */
	size_t n_addrs;
	struct ct_entry *found;
	size_t n, cap;
	int rc;
};

static int ip_attrs(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);
	if (type == CTA_IP_V4_SRC || type == CTA_IP_V4_DST) {
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		tb[type] = attr;
	}
	return MNL_CB_OK;
}

static int top_attrs(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);
	if (type <= CTA_MAX)
		tb[type] = attr;
	return MNL_CB_OK;
}

static int wanted(const struct ct_scan *s, const struct nlattr *ip)
{
	uint32_t a = ip ? ntohl(mnl_attr_get_u32(ip)) : 0;
	for (size_t i = 0; ip && i < s->n_addrs; i++)
		if (s->addrs[i] == a)
			return 1;
	return 0;
}

/* Does this tuple have one of the addresses as source or destination? */
static int tuple_has(const struct nlattr *tuple, const struct ct_scan *s)
{
	const struct nlattr *tb[CTA_TUPLE_MAX + 1] = {0}, *ip[CTA_IP_MAX + 1] = {0};
	if (mnl_attr_parse_nested(tuple, top_attrs, tb) < 0 || !tb[CTA_TUPLE_IP] ||
	    mnl_attr_parse_nested(tb[CTA_TUPLE_IP], ip_attrs, ip) < 0)
		return 0;
	return wanted(s, ip[CTA_IP_V4_SRC]) || wanted(s, ip[CTA_IP_V4_DST]);
}

static int ct_msg(const struct nlmsghdr *nlh, void *data)
{
	struct ct_scan *s = data;
	const struct nlattr *tb[CTA_MAX + 1] = {0};
	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), top_attrs, tb) < 0 ||
	    !tb[CTA_TUPLE_ORIG] || !tuple_has(tb[CTA_TUPLE_ORIG], s))
		return MNL_CB_OK;
	if (tb[CTA_TUPLE_ORIG]->nla_len > sizeof(s->found->tuple))
		return MNL_CB_OK;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct ct_entry *f = realloc(s->found, cap * sizeof(*f));
		if (!f) {
			s->rc = -ENOMEM;
			return MNL_CB_ERROR;
		}
		s->found = f;
		s->cap = cap;
	}
	struct ct_entry *e = &s->found[s->n++];
	memcpy(e->tuple, tb[CTA_TUPLE_ORIG], tb[CTA_TUPLE_ORIG]->nla_len);
	e->has_zone = tb[CTA_ZONE] && mnl_attr_validate(tb[CTA_ZONE], MNL_TYPE_U16) >= 0;
	e->zone = e->has_zone ? mnl_attr_get_u16(tb[CTA_ZONE]) : 0;
	return MNL_CB_OK;
}

int fw_nl_ct_forget(struct fw_nl *nl, const uint32_t *addrs, size_t n)
{
	struct ct_scan s = {.addrs = addrs, .n_addrs = n};
	if (!n)
		return 0;
	struct nlmsghdr *nlh = header(nl, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, NLM_F_DUMP);
	int rc = talk(nl, nlh, ct_msg, &s);
	if (s.rc)
		rc = s.rc;
	int removed = 0;
	for (size_t i = 0; !rc && i < s.n; i++) {
		nlh = header(nl, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_ACK);
		const struct nlattr *t = (const struct nlattr *)s.found[i].tuple;
		memcpy(mnl_nlmsg_get_payload_tail(nlh), t, t->nla_len);
		nlh->nlmsg_len += MNL_ALIGN(t->nla_len);
		if (s.found[i].has_zone)
			mnl_attr_put_u16(nlh, CTA_ZONE, s.found[i].zone);
		int r = talk(nl, nlh, NULL, NULL);
		if (r == 0)
			removed++;
		else if (r != -ENOENT) /* gone meanwhile is fine */
			rc = r;
	}
	free(s.found);
	return rc ? rc : removed;
}
