/*
 * dnsmap.c -- the remote-DNS placeholder map (RFC 3089 §3 "fake IP" addresses).
 *
 * Design note (STYLE.md §12)
 * --------------------------
 * With socks4a/socks5h the program must never resolve names itself, yet it calls
 * getaddrinfo() and then connect()s to an address. The resolver hooks therefore answer with
 * a placeholder address and remember which name it stands for; connect(), BIND and sendto()
 * map the placeholder back and send the NAME to the proxy (RFC 3089 §3, steps 2-4).
 *
 * Range. Slot i of the map is the name of two placeholders: IPv4 network+1+i from
 * SOCKSIFY_DNS_RANGE's IPv4 CIDR (default 240.0.0.0/8: class E, reserved, never routed, not
 * multicast) for AF_INET lookups, and IPv6 network+1+i from its IPv6 CIDR (default
 * 100::/64, RFC 6666 discard-only) for AF_INET6 lookups; AF_UNSPEC lookups answer both,
 * IPv4 first (resolve.c, hook_getaddrinfo.c). Any address inside
 * the range that the map does not know is refused at connect (fail closed), never sent
 * anywhere. The number of slots is min(range size - 2, 65536).
 *
 * Memory and threads. The map lives in ONE anonymous MAP_SHARED mapping, created at its
 * first use (the first name that gets a placeholder) or, at the latest, just before the
 * program's first fork() (init.c sfy_map_get); until then no address of the range is
 * known, so every one is refused (route.c). Allocation is lock-free: a slot index comes from an
 * atomic fetch-and-add, the name is written, then the slot is published with a release
 * store of `ready`; an open-addressing hash index (buckets claimed with compare-and-swap)
 * finds the slot of a name again, so the same name keeps its placeholder. Two threads
 * racing on the same new name may both allocate; one wins the bucket, the other slot stays
 * valid (it still maps back to the same name), so correctness needs no lock. Slots are
 * never freed or reused: an address handed out once means the same name for the life of
 * the process tree.
 *
 * fork(). The child inherits the SAME shared pages, not a copy: names resolved by the
 * parent before or after the fork, by the child, or by any sibling, map back everywhere in
 * the process tree. No lock exists that a fork could leave held.
 *
 * exec(). An exec'd program gets a new image, so the mapping is gone and its init creates
 * a new, empty map. Placeholders learned before the exec (say, passed on a command line)
 * are unknown afterwards and connect() to them fails with EHOSTUNREACH: never a direct
 * connection. Programs normally pass names, not addresses, to the programs they run.
 *
 * This file is pure apart from mmap/munmap, so the cffi binding tests it directly
 * (tests/native/test_dnsmap.py, including fork).
 */
#include "socksify.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define MAP_MAGIC 0x53465944u /* "SFYD" */

struct slot {
    uint32_t ready; /* 0 until the name is complete (release/acquire) */
    uint32_t hash;
    char name[256];
};

struct sfy_dnsmap {
    uint32_t magic;
    uint32_t slots;
    uint32_t buckets;
    uint32_t next; /* atomic: next slot to allocate */
    size_t size;   /* bytes mapped */
    /* followed by uint32_t bucket[buckets] (slot index + 1, 0 = empty), then slots */
};

static uint32_t *bucket_array(const struct sfy_dnsmap *m)
{
    return (uint32_t *)((char *)m + sizeof *m);
}

static struct slot *slot_array(const struct sfy_dnsmap *m)
{
    return (struct slot *)((char *)bucket_array(m) + (size_t)m->buckets * sizeof(uint32_t));
}

/* FNV-1a, 32 bit. */
static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Create an empty map of `slots` names. Returns NULL with errno on failure. */
struct sfy_dnsmap *sfy_dnsmap_create(uint32_t slots)
{
    struct sfy_dnsmap *m;
    uint32_t buckets;
    size_t size;
    if (slots == 0 || slots > (1u << 24)) {
        errno = EINVAL;
        return NULL;
    }
    buckets = slots * 2;
    size = sizeof *m + (size_t)buckets * sizeof(uint32_t) + (size_t)slots * sizeof(struct slot);
    /* MAP_SHARED so that fork children see one map; pages are touched only when used. */
    m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    m->magic = MAP_MAGIC;
    m->slots = slots;
    m->buckets = buckets;
    m->next = 0;
    m->size = size;
    return m;
}

void sfy_dnsmap_destroy(struct sfy_dnsmap *m)
{
    if (m)
        munmap(m, m->size);
}

uint32_t sfy_dnsmap_capacity(const struct sfy_dnsmap *m)
{
    return m->slots;
}

uint32_t sfy_dnsmap_used(const struct sfy_dnsmap *m)
{
    uint32_t n = __atomic_load_n(&m->next, __ATOMIC_ACQUIRE);
    return n < m->slots ? n : m->slots;
}

/* Find or add `name`. Returns 0 and *slot; -1 with errno ENAMETOOLONG (> 255 bytes),
 * EINVAL (empty) or ENOSPC (every slot used). Lock-free, safe across threads and processes
 * sharing the mapping. */
int sfy_dnsmap_intern(struct sfy_dnsmap *m, const char *name, uint32_t *slot)
{
    size_t len = strnlen(name, 256);
    uint32_t h, b, mine = UINT32_MAX;
    uint32_t *bucket = bucket_array(m);
    struct slot *slots = slot_array(m);
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    if (len > 255) {
        errno = ENAMETOOLONG;
        return -1;
    }
    h = hash_name(name);
    b = h % m->buckets;
    for (uint32_t probe = 0; probe < m->buckets; probe++, b = (b + 1) % m->buckets) {
        uint32_t v = __atomic_load_n(&bucket[b], __ATOMIC_ACQUIRE);
        if (v == 0) {
            if (mine == UINT32_MAX) {
                uint32_t idx = __atomic_fetch_add(&m->next, 1, __ATOMIC_ACQ_REL);
                if (idx >= m->slots) {
                    __atomic_store_n(&m->next, m->slots, __ATOMIC_RELEASE);
                    errno = ENOSPC;
                    return -1;
                }
                memcpy(slots[idx].name, name, len + 1);
                slots[idx].hash = h;
                __atomic_store_n(&slots[idx].ready, 1, __ATOMIC_RELEASE);
                mine = idx;
            }
            uint32_t expected = 0;
            if (__atomic_compare_exchange_n(&bucket[b], &expected, mine + 1, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                *slot = mine;
                return 0;
            }
            v = expected; /* another thread claimed this bucket first: look at its slot */
        }
        struct slot *s = &slots[v - 1];
        if (__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE) && s->hash == h &&
            strcmp(s->name, name) == 0) {
            *slot = v - 1; /* a slot we allocated meanwhile stays valid, just unindexed */
            return 0;
        }
    }
    errno = ENOSPC;
    return -1;
}

/* Name of `slot`: 1 and a copy in out; 0 when the slot was never handed out. */
int sfy_dnsmap_lookup(const struct sfy_dnsmap *m, uint32_t slot, char *out, size_t cap)
{
    const struct slot *s;
    if (slot >= m->slots || cap == 0)
        return 0;
    s = &slot_array(m)[slot];
    if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
        return 0;
    size_t n = strnlen(s->name, sizeof s->name);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s->name, n);
    out[n] = '\0';
    return 1;
}

uint32_t sfy_range_slots(const struct sfy_net *net, uint32_t limit)
{
    int host_bits = (net->family == AF_INET ? 32 : 128) - net->prefix;
    uint64_t n;
    if (host_bits >= 32)
        return limit;
    n = ((uint64_t)1 << host_bits) - 2; /* not the network address, not the last one */
    return n < limit ? (uint32_t)n : limit;
}

/* ip = network + 1 + slot (big-endian add with carry over 4 or 16 bytes). */
void sfy_placeholder_ip(const struct sfy_net *net, uint32_t slot, uint8_t *ip)
{
    int len = net->family == AF_INET ? 4 : 16;
    uint64_t carry = (uint64_t)slot + 1;
    memcpy(ip, net->addr, (size_t)len);
    for (int i = len - 1; i >= 0 && carry; i--) {
        uint64_t sum = ip[i] + (carry & 0xFF);
        ip[i] = (uint8_t)sum;
        carry = (carry >> 8) + (sum >> 8);
    }
}

/* 1 when ip is inside `net` (a placeholder range); *slot is its slot, or UINT32_MAX for an
 * address of the range that no slot can name (the network address, beyond 2^32). */
int sfy_placeholder_slot(const struct sfy_net *net, int family, const uint8_t *ip,
                         uint32_t *slot)
{
    int len = family == AF_INET ? 4 : 16;
    uint64_t off = 0;
    if (!net->family || !sfy_net_contains(net, family, ip))
        return 0;
    for (int i = 0; i < len; i++) {
        uint8_t host = (uint8_t)(ip[i] & ~net->addr[i]);
        if (i < len - 4 && host) {
            *slot = UINT32_MAX;
            return 1;
        }
        if (i >= len - 4)
            off = off << 8 | host;
    }
    /* host bits within the prefix's byte are masked by the network address */
    *slot = off == 0 ? UINT32_MAX : (uint32_t)(off - 1);
    return 1;
}
