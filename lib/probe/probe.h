/* The health probe a device's agent sends its gateway node through the
 * tunnel (UDP, to the gateway address at api.probe_port), and the answer.
 * Fixed binary layouts, so that both sides check a datagram in a few
 * comparisons and a malformed one is simply dropped.
 *
 * Probe (16 bytes):
 *   0  "MGP1"   magic and version
 *   4  1        type: probe
 *   5  0        reserved, zero
 *   6  mtu      2 bytes, big endian: the device's tunnel MTU (docs/client.md,
 *               "Path MTU"), 0 = not told; else PROBE_MTU_MIN..65535. A
 *               device sends it only to a gateway that answered its size
 *               probes (below): an older one drops a probe with it.
 *   8  nonce    8 bytes the device chose, echoed in the answer
 *
 * Answer (24 bytes + the two names):
 *   0  "MGP1"
 *   4  2        type: answer
 *   5  0        reserved, zero
 *   6  n        length of this node's name, 1..PROBE_NAME_MAX
 *   7  a        length of the active node's name, 0..PROBE_NAME_MAX (0: none)
 *   8  nonce    the probe's
 *   16 epoch    8 bytes, big endian: the config epoch for the asking device
 *   24 name     n bytes, printable ASCII
 *   24+n active a bytes, printable ASCII
 * and nothing after.
 *
 * Size probe and its answer (path MTU discovery: UDP to the gateway's
 * public address at api.pmtu_port, outside the tunnel, DF set):
 *   0  "MGP1"
 *   4  3        type: size probe (4: its answer)
 *   5  0        reserved, zero
 *   6  len      2 bytes, big endian: this datagram's own length (the UDP
 *               payload), PMTU_PROBE_MIN..PMTU_PROBE_MAX
 *   8  nonce    8 bytes the device chose, echoed in the answer
 *   16 zeros    up to len
 * The answer is the probe with the type changed: exactly as long, never
 * longer (no amplification), so that it tests the way back too. */
#ifndef MG_PROBE_H
#define MG_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define PROBE_DEFAULT_PORT 51830
#define PROBE_REQUEST_LEN  16
#define PROBE_NAME_MAX     127 /* a cluster node's name (cluster.node) */
#define PROBE_ANSWER_MAX   (24 + 2 * PROBE_NAME_MAX)
#define PROBE_MTU_MIN      576 /* the smallest MTU a device may report */
#define PMTU_PROBE_MIN     16
#define PMTU_PROBE_MAX     9216 /* a jumbo frame's payload: more is never a path */

struct probe_answer {
	uint64_t nonce;
	uint64_t epoch;
	char node[PROBE_NAME_MAX + 1];   /* who answered */
	char active[PROBE_NAME_MAX + 1]; /* the active node, "" when none is known */
};

/* The probe carrying `nonce` (and `mtu`, 0 = none), into out. */
void probe_request_encode(uint64_t nonce, uint8_t out[PROBE_REQUEST_LEN]);
void probe_request_encode_mtu(uint64_t nonce, unsigned mtu, uint8_t out[PROBE_REQUEST_LEN]);
/* 0 with the nonce (and the mtu told, 0 none), or -EINVAL for anything but
 * a probe. */
int probe_request_decode(const void *buf, size_t len, uint64_t *nonce);
int probe_request_decode_mtu(const void *buf, size_t len, uint64_t *nonce, unsigned *mtu);

/* The answer's bytes into out (room for PROBE_ANSWER_MAX): their length, or
 * -EINVAL when a name is empty (node), too long or not printable ASCII. */
int probe_answer_encode(const struct probe_answer *a, uint8_t out[PROBE_ANSWER_MAX]);
/* 0 with *a filled, or -EINVAL for anything but a well-formed answer
 * (never reads past buf[len - 1]; *a is left zeroed then). */
int probe_answer_decode(const void *buf, size_t len, struct probe_answer *a);

enum pmtu_probe_type { PMTU_PROBE = 3, PMTU_ANSWER = 4 };

/* A size probe or answer of len bytes (PMTU_PROBE_MIN..PMTU_PROBE_MAX)
 * into out (room for len): 0, or -EINVAL for a length out of range. */
int pmtu_probe_encode(enum pmtu_probe_type type, uint64_t nonce, size_t len, uint8_t *out);
/* 0 with its type and nonce, or -EINVAL for anything but a well-formed
 * size probe or answer (its length field the datagram's, zeros after the
 * nonce). */
int pmtu_probe_decode(const void *buf, size_t len, enum pmtu_probe_type *type, uint64_t *nonce);

#endif
