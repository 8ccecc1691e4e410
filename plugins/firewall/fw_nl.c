/* ipset and conntrack through nfnetlink (libmnl), in-process: one
 * device's change costs a message and its ACK, not a process, and a whole
 * role set a few messages of thousands of members each. Also the news of
 * route changes (rtnetlink), which move subnets between interfaces. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/ipset/ip_set_hash.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/rtnetlink.h>

#include "fw.h"

/* A batch of adds is one message whose members are nested in one
 * attribute, and an attribute's length is 16 bits: below 64 KiB. */
#define BATCH_SIZE 60000

struct fw_nl {
	struct mnl_socket *sock;
	unsigned portid;
	unsigned seq;
	char buf[32768]; /* the largest message a dump sends */
	/* a batch, then the answer to it: a refusal echoes the whole batch */
	char batch[BATCH_SIZE + 4096];
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

static struct nlmsghdr *header_in(char *buf, struct fw_nl *nl, int subsys, int cmd, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
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

static struct nlmsghdr *header(struct fw_nl *nl, int subsys, int cmd, uint16_t flags)
{
	return header_in(nl->buf, nl, subsys, cmd, flags);
}

/* Sends nlh and runs cb on every answer, read into buf, until the ACK or
 * the end of the dump; on_error (when not NULL) sees an error answer
 * first. 0 or a negative errno (the kernel's). */
static int exchange(struct fw_nl *nl, struct nlmsghdr *nlh, char *buf, size_t size, mnl_cb_t cb,
                    mnl_cb_t on_error, void *data)
{
	unsigned seq = nlh->nlmsg_seq;
	mnl_cb_t ctl[NLMSG_ERROR + 1] = {[NLMSG_ERROR] = on_error};
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, buf, size);
		if (n < 0)
			return -errno;
		errno = 0;
		int rc = on_error ? mnl_cb_run2(buf, (size_t)n, seq, nl->portid, cb, data, ctl,
		                                NLMSG_ERROR + 1)
		                  : mnl_cb_run(buf, (size_t)n, seq, nl->portid, cb, data);
		if (rc == MNL_CB_ERROR)
			return errno ? -errno : -EIO;
		if (rc == MNL_CB_STOP)
			return 0;
	}
}

static int talk(struct fw_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	return exchange(nl, nlh, nl->buf, sizeof(nl->buf), cb, NULL, data);
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

static int set_create(struct fw_nl *nl, const char *set, size_t members)
{
	/* hash:ip revision 4 (Linux 4.3): every ipset program of these years
	 * lists it, whatever the kernel's newest revision */
	struct nlmsghdr *nlh = header(nl, NFNL_SUBSYS_IPSET, IPSET_CMD_CREATE, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, set);
	mnl_attr_put_strz(nlh, IPSET_ATTR_TYPENAME, "hash:ip");
	mnl_attr_put_u8(nlh, IPSET_ATTR_REVISION, 4);
	mnl_attr_put_u8(nlh, IPSET_ATTR_FAMILY, NFPROTO_IPV4);
	struct nlattr *data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA);
	mnl_attr_put_u32(nlh, IPSET_ATTR_HASHSIZE | NLA_F_NET_BYTEORDER,
	                 htonl((uint32_t)fw_set_hashsize(members)));
	mnl_attr_put_u32(nlh, IPSET_ATTR_MAXELEM | NLA_F_NET_BYTEORDER, htonl(FW_SET_MAXELEM));
	mnl_attr_nest_end(nlh, data);
	/* no NLM_F_EXCL: a set of that name and kind being there is fine */
	return talk(nl, nlh, NULL, NULL);
}

static int set_swap(struct fw_nl *nl, const char *from, const char *to)
{
	struct nlmsghdr *nlh = header(nl, NFNL_SUBSYS_IPSET, IPSET_CMD_SWAP, NLM_F_ACK);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, from);
	mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME2, to);
	return talk(nl, nlh, NULL, NULL);
}

/* A refused batch: the kernel echoes it with IPSET_ATTR_LINENO set to the
 * line number of the member it refused (our index + 1). */
struct refusal {
	uint32_t lineno;
};

static int lineno_attr(const struct nlattr *attr, void *data)
{
	struct refusal *r = data;
	if (mnl_attr_get_type(attr) == IPSET_ATTR_LINENO &&
	    mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
		r->lineno = mnl_attr_get_u32(attr);
	return MNL_CB_OK;
}

static int batch_error(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e))) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (!e->error)
		return MNL_CB_STOP; /* the ACK */
	size_t echoed = nlh->nlmsg_len - offsetof(struct nlmsgerr, msg) - MNL_NLMSG_HDRLEN;
	if (e->msg.nlmsg_len <= echoed &&
	    e->msg.nlmsg_len >= MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg)))
		mnl_attr_parse(&e->msg, sizeof(struct nfgenmsg), lineno_attr, data);
	errno = -e->error;
	return MNL_CB_ERROR;
}

/* One member of a batch, numbered `lineno`: 0, or -ENOSPC when it does
 * not fit (then nothing of it is in the message). */
static int batch_member(struct nlmsghdr *nlh, uint32_t addr, uint32_t lineno)
{
	uint32_t before = nlh->nlmsg_len;
	struct nlattr *data = mnl_attr_nest_start_check(nlh, BATCH_SIZE, IPSET_ATTR_DATA);
	struct nlattr *ip = data ? mnl_attr_nest_start_check(nlh, BATCH_SIZE, IPSET_ATTR_IP) : NULL;
	if (ip && mnl_attr_put_u32_check(
	              nlh, BATCH_SIZE, IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, htonl(addr))) {
		mnl_attr_nest_end(nlh, ip);
		if (mnl_attr_put_u32_check(nlh, BATCH_SIZE, IPSET_ATTR_LINENO, lineno)) {
			mnl_attr_nest_end(nlh, data);
			return 0;
		}
	}
	nlh->nlmsg_len = before;
	return -ENOSPC;
}

/* Adds addrs[0..n) to set, as many to a message as fit (some 2,500). */
static int set_add_all(struct fw_nl *nl, const char *set, const uint32_t *addrs, size_t n,
                       size_t *refused)
{
	for (size_t i = 0; i < n;) {
		struct nlmsghdr *nlh =
		    header_in(nl->batch, nl, NFNL_SUBSYS_IPSET, IPSET_CMD_ADD, NLM_F_ACK);
		mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, set);
		/* asks the kernel to say which member it refuses, if any */
		mnl_attr_put_u32(nlh, IPSET_ATTR_LINENO, 0);
		struct nlattr *adt = mnl_attr_nest_start(nlh, IPSET_ATTR_ADT);
		size_t first = i;
		while (i < n && !batch_member(nlh, addrs[i], (uint32_t)(i + 1)))
			i++;
		if (i == first)
			return -EMSGSIZE; /* not one member fits: never with BATCH_SIZE */
		mnl_attr_nest_end(nlh, adt);
		struct refusal r = {0};
		int rc = exchange(nl, nlh, nl->batch, sizeof(nl->batch), NULL, batch_error, &r);
		if (rc) {
			if (r.lineno > first && r.lineno <= i)
				*refused = r.lineno - 1;
			return rc;
		}
	}
	return 0;
}

int fw_nl_set_replace(struct fw_nl *nl, const char *set, const uint32_t *addrs, size_t n,
                      size_t *refused)
{
	*refused = n;
	if (strlen(set) >= IPSET_MAXNAMELEN || !strcmp(set, FW_SET_SWAP))
		return -EINVAL;
	int rc = set_create(nl, set, 0);
	if (rc)
		return rc;
	/* one a crash left behind holds members of no use */
	rc = fw_nl_set_destroy(nl, FW_SET_SWAP);
	if (rc && rc != -ENOENT)
		return rc;
	if ((rc = set_create(nl, FW_SET_SWAP, n)) ||
	    (rc = set_add_all(nl, FW_SET_SWAP, addrs, n, refused)) ||
	    (rc = set_swap(nl, FW_SET_SWAP, set))) {
		fw_nl_set_destroy(nl, FW_SET_SWAP);
		return rc;
	}
	/* FW_SET_SWAP now holds the old members, referenced by no rule */
	return fw_nl_set_destroy(nl, FW_SET_SWAP);
}

const char *fw_nl_strerror(int rc)
{
	static const struct {
		int code;
		const char *text;
	} ipset[] = {
	    {IPSET_ERR_PROTOCOL, "the kernel's ipset does not understand the message"},
	    {IPSET_ERR_FIND_TYPE, "the kernel has no such set type or revision"},
	    {IPSET_ERR_MAX_SETS, "the kernel's limit of sets is reached"},
	    {IPSET_ERR_BUSY, "the set is in use by a rule"},
	    {IPSET_ERR_EXIST_SETNAME2, "the second set does not exist"},
	    {IPSET_ERR_TYPE_MISMATCH, "the sets are of different types"},
	    {IPSET_ERR_EXIST, "a set of that name but another kind exists"},
	    {IPSET_ERR_INVALID_FAMILY, "not an IPv4 address"},
	    {IPSET_ERR_HASH_FULL, "the set is full"},
	    {IPSET_ERR_HASH_ELEM, "a null address (0.0.0.0) cannot be stored in a hash set"},
	};
	for (size_t i = 0; i < sizeof(ipset) / sizeof(ipset[0]); i++)
		if (-rc == ipset[i].code)
			return ipset[i].text;
	if (-rc >= IPSET_ERR_PRIVATE)
		return "refused by the kernel's ipset";
	return strerror(-rc);
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

/* ---- route changes ---- */

struct fw_routes {
	struct mnl_socket *sock;
};

int fw_routes_open(struct fw_routes **out)
{
	struct fw_routes *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!r->sock || mnl_socket_bind(r->sock, RTMGRP_IPV4_ROUTE, MNL_SOCKET_AUTOPID) < 0) {
		int rc = -errno;
		fw_routes_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

void fw_routes_close(struct fw_routes *r)
{
	if (!r)
		return;
	if (r->sock)
		mnl_socket_close(r->sock);
	free(r);
}

int fw_routes_fd(const struct fw_routes *r)
{
	return mnl_socket_get_fd(r->sock);
}

/* The group carries nothing but RTM_NEWROUTE and RTM_DELROUTE: whatever
 * arrived is a change, and what it says is read from the table when the
 * rules are rendered again. */
int fw_routes_drain(struct fw_routes *r)
{
	char buf[8192];
	int changed = 0;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(r->sock, buf, sizeof(buf));
		if (n > 0) {
			changed = 1;
			continue;
		}
		if (n < 0 && errno == ENOBUFS) {
			changed = 1; /* news were lost: take it as a change */
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		return changed;
	}
}
