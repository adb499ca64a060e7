/*
 * codec.c -- pure SOCKS message encoders and parsers (see codec.h for the conventions).
 *
 * Byte layouts are taken from RFC 1928 (SOCKS5), RFC 1929 (username/password) and the
 * SOCKS4 / SOCKS4A protocol documents in /work/shared/rfc; each function cites its section.
 * Held to the Python core socksify.protocol by tests/vectors/socks4.json, socks5.json and
 * udp.json (tests/native/test_codec_vectors.py).
 */
#include "codec.h"

#include <string.h>

/* 1 when name[0..n) is ASCII without NUL (the wire form: ASCII, or IDNA for other names). */
static int ascii_name(const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] == 0 || (unsigned char)name[i] >= 0x80)
            return 0;
    return 1;
}

/* Length of a domain name that fits the wire's one-byte length, or a negative code. */
static int name_length(const struct sfy_addr *a)
{
    size_t n = strnlen(a->name, sizeof a->name);
    if (n == 0)
        return SFY_ENAME;
    if (n > 255 || !ascii_name(a->name, n))
        return SFY_EINVAL;
    return (int)n;
}

/* Bytes DST.ADDR takes for `a` (RFC 1928 §4/§5), or a negative SFY_E* code. */
static int addr_wire_size(const struct sfy_addr *a)
{
    switch (a->atyp) {
    case SFY_ATYP_IPV4:
        return 4;
    case SFY_ATYP_IPV6:
        return 16;
    case SFY_ATYP_DOMAIN: {
        int n = name_length(a);
        return n < 0 ? n : 1 + n;
    }
    default:
        return SFY_EATYP;
    }
}

/* Write ATYP DST.ADDR DST.PORT (RFC 1928 §5) at `out`, which has room (checked by caller). */
static size_t put_addr(uint8_t *out, const struct sfy_addr *a)
{
    size_t i = 0;
    out[i++] = a->atyp;
    if (a->atyp == SFY_ATYP_IPV4) {
        memcpy(out + i, a->ip, 4);
        i += 4;
    } else if (a->atyp == SFY_ATYP_IPV6) {
        memcpy(out + i, a->ip, 16);
        i += 16;
    } else {
        size_t n = strnlen(a->name, sizeof a->name);
        out[i++] = (uint8_t)n;
        memcpy(out + i, a->name, n);
        i += n;
    }
    out[i++] = (uint8_t)(a->port >> 8);
    out[i++] = (uint8_t)(a->port & 0xFF);
    return i;
}

/* Parse ATYP ADDR PORT at buf[0..len); bytes consumed, SFY_NEED_MORE or SFY_EATYP/SFY_ENAME. */
static int get_addr(const uint8_t *buf, size_t len, struct sfy_addr *a)
{
    size_t need;
    memset(a, 0, sizeof *a);
    if (len < 1)
        return SFY_NEED_MORE;
    a->atyp = buf[0];
    switch (buf[0]) {
    case SFY_ATYP_IPV4:
        need = 1 + 4 + 2;
        if (len < need)
            return SFY_NEED_MORE;
        memcpy(a->ip, buf + 1, 4);
        break;
    case SFY_ATYP_IPV6:
        need = 1 + 16 + 2;
        if (len < need)
            return SFY_NEED_MORE;
        memcpy(a->ip, buf + 1, 16);
        break;
    case SFY_ATYP_DOMAIN:
        if (len < 2)
            return SFY_NEED_MORE;
        if (buf[1] == 0)
            return SFY_ENAME;
        need = 2 + (size_t)buf[1] + 2;
        if (len < need)
            return SFY_NEED_MORE;
        if (!ascii_name((const char *)buf + 2, buf[1]))
            return SFY_ENAME;
        memcpy(a->name, buf + 2, buf[1]);
        a->name[buf[1]] = '\0';
        break;
    default:
        return SFY_EATYP;
    }
    a->port = (uint16_t)(buf[need - 2] << 8 | buf[need - 1]);
    return (int)need;
}

int sfy_s5_encode_greeting(uint8_t *out, size_t cap, const uint8_t *methods, size_t n_methods)
{
    /* RFC 1928 §3: +----+----------+----------+ | VER | NMETHODS | METHODS | (1 to 255) */
    if (n_methods < 1 || n_methods > 255)
        return SFY_EINVAL;
    if (cap < 2 + n_methods)
        return SFY_ESPACE;
    out[0] = 5;
    out[1] = (uint8_t)n_methods;
    memcpy(out + 2, methods, n_methods);
    return (int)(2 + n_methods);
}

int sfy_s5_parse_method(const uint8_t *buf, size_t len, uint8_t *method)
{
    /* RFC 1928 §3: the server selects from the offered METHODS: | VER | METHOD | */
    if (len >= 1 && buf[0] != 5)
        return SFY_EVERSION;
    if (len < 2)
        return SFY_NEED_MORE;
    *method = buf[1];
    return 2;
}

int sfy_s5_encode_userpass(uint8_t *out, size_t cap, const uint8_t *user, size_t user_len,
                           const uint8_t *pass, size_t pass_len)
{
    /* RFC 1929 §2: | VER=1 | ULEN | UNAME | PLEN | PASSWD | */
    if (user_len > 255 || pass_len > 255)
        return SFY_EINVAL;
    if (cap < 3 + user_len + pass_len)
        return SFY_ESPACE;
    out[0] = 1;
    out[1] = (uint8_t)user_len;
    if (user_len)
        memcpy(out + 2, user, user_len);
    out[2 + user_len] = (uint8_t)pass_len;
    if (pass_len)
        memcpy(out + 3 + user_len, pass, pass_len);
    return (int)(3 + user_len + pass_len);
}

int sfy_s5_parse_auth_result(const uint8_t *buf, size_t len, int *success)
{
    /* RFC 1929 §2: | VER | STATUS |; "A STATUS field of X'00' indicates success." The
     * subnegotiation version is 1. */
    if (len >= 1 && buf[0] != 1)
        return SFY_EVERSION;
    if (len < 2)
        return SFY_NEED_MORE;
    *success = buf[1] == 0;
    return 2;
}

int sfy_s5_encode_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sfy_addr *dst)
{
    /* RFC 1928 §4: | VER | CMD | RSV=X'00' | ATYP | DST.ADDR | DST.PORT | */
    int size = addr_wire_size(dst);
    if (size < 0)
        return size == SFY_EATYP ? SFY_EINVAL : size;
    if (cmd < SFY_CMD_CONNECT || cmd > SFY_CMD_UDP_ASSOCIATE)
        return SFY_EINVAL;
    if (cap < (size_t)(3 + 1 + size + 2))
        return SFY_ESPACE;
    out[0] = 5;
    out[1] = cmd;
    out[2] = 0;
    return (int)(3 + put_addr(out + 3, dst));
}

int sfy_s5_parse_reply(const uint8_t *buf, size_t len, struct sfy_reply *out)
{
    /* RFC 1928 §6: | VER | REP | RSV=X'00' | ATYP | BND.ADDR | BND.PORT | */
    int n;
    if (len >= 1 && buf[0] != 5)
        return SFY_EVERSION;
    if (len >= 3 && buf[2] != 0)
        return SFY_ERSV;
    if (len < 4)
        return SFY_NEED_MORE;
    n = get_addr(buf + 3, len - 3, &out->addr);
    if (n <= 0)
        return n;
    out->code = buf[1];
    return 3 + n;
}

int sfy_s4_encode_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sfy_addr *dst,
                          const uint8_t *userid, size_t userid_len)
{
    /* SOCKS4.protocol: | VN=4 | CD | DSTPORT(2) | DSTIP(4) | USERID | NULL |
     * SOCKS4A.protocol: "set the first three bytes of DSTIP to NULL and the last byte to a
     * non-zero value" and follow the USERID's NULL with the domain name and another NULL. */
    size_t need = 8 + userid_len + 1, n_name = 0;
    if (cmd != SFY_CMD_CONNECT && cmd != SFY_CMD_BIND)
        return SFY_EINVAL;
    if (userid_len && memchr(userid, 0, userid_len))
        return SFY_EINVAL;
    if (dst->atyp == SFY_ATYP_DOMAIN) {
        int n = name_length(dst);
        if (n < 0)
            return n;
        n_name = (size_t)n;
        need += n_name + 1;
    } else if (dst->atyp != SFY_ATYP_IPV4) {
        return SFY_EINVAL;
    }
    if (cap < need)
        return SFY_ESPACE;
    out[0] = 4;
    out[1] = cmd;
    out[2] = (uint8_t)(dst->port >> 8);
    out[3] = (uint8_t)(dst->port & 0xFF);
    if (dst->atyp == SFY_ATYP_IPV4) {
        memcpy(out + 4, dst->ip, 4);
    } else {
        out[4] = out[5] = out[6] = 0;
        out[7] = 1;
    }
    if (userid_len)
        memcpy(out + 8, userid, userid_len);
    out[8 + userid_len] = 0;
    if (n_name) {
        memcpy(out + 9 + userid_len, dst->name, n_name);
        out[9 + userid_len + n_name] = 0;
    }
    return (int)need;
}

int sfy_s4_parse_reply(const uint8_t *buf, size_t len, struct sfy_reply *out)
{
    /* SOCKS4.protocol: | VN | CD | DSTPORT | DSTIP |, "VN is the version of the reply code
     * and should be 0". Some servers send 4; accept both. */
    if (len >= 1 && buf[0] != 0 && buf[0] != 4)
        return SFY_EVERSION;
    if (len >= 2 && (buf[1] < 90 || buf[1] > 93))
        return SFY_ECODE; /* "90: request granted" ... "93: ... different user-ids" */
    if (len < 8)
        return SFY_NEED_MORE;
    memset(&out->addr, 0, sizeof out->addr);
    out->code = buf[1];
    out->addr.atyp = SFY_ATYP_IPV4;
    out->addr.port = (uint16_t)(buf[2] << 8 | buf[3]);
    memcpy(out->addr.ip, buf + 4, 4);
    return 8;
}

int sfy_udp_encode_header(uint8_t *out, size_t cap, uint8_t frag, const struct sfy_addr *dst)
{
    /* RFC 1928 §7: | RSV(2)=X'0000' | FRAG | ATYP | DST.ADDR | DST.PORT | DATA | */
    int size = addr_wire_size(dst);
    if (size < 0)
        return size == SFY_EATYP ? SFY_EINVAL : size;
    if (cap < (size_t)(3 + 1 + size + 2))
        return SFY_ESPACE;
    out[0] = out[1] = 0;
    out[2] = frag;
    return (int)(3 + put_addr(out + 3, dst));
}

int sfy_udp_parse_header(const uint8_t *buf, size_t len, struct sfy_addr *addr, uint8_t *frag)
{
    int n;
    if ((len >= 1 && buf[0] != 0) || (len >= 2 && buf[1] != 0))
        return SFY_ERSV;
    if (len < 4)
        return SFY_EINVAL;
    n = get_addr(buf + 3, len - 3, addr);
    if (n == SFY_NEED_MORE)
        return SFY_EINVAL;
    if (n < 0)
        return n;
    *frag = buf[2];
    return 3 + n;
}
