/*
 * codec.h -- pure SOCKS4/4a/5 message encoding and parsing (no syscalls, no allocation).
 *
 * Rules of this module (STYLE.md §5 "codec.c stays pure"):
 * - Encoders write into a caller buffer and return the number of bytes written, or a
 *   negative SFY_E* code (SFY_ESPACE when `cap` is too small, SFY_EINVAL for a field the
 *   protocol cannot carry).
 * - Parsers return the number of bytes consumed (> 0) for a complete message,
 *   SFY_NEED_MORE (0) when `len` bytes are a valid but incomplete prefix, or a negative
 *   SFY_E* code for bytes that can never become a valid message.
 * - This header is self-contained: the cffi binding (csrc/build_ffi.py) and the Python
 *   tests use it exactly as the preload library does, through the JSON files in tests/vectors/.
 */
#ifndef SFY_CODEC_H
#define SFY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define SFY_NEED_MORE 0
#define SFY_EVERSION (-1) /* wrong protocol version byte */
#define SFY_EATYP (-2)    /* unknown address type */
#define SFY_ERSV (-3)     /* non-zero reserved byte */
#define SFY_EINVAL (-4)   /* a field the message cannot carry (too long, NUL, IPv6 in SOCKS4) */
#define SFY_ESPACE (-5)   /* output buffer too small */
#define SFY_ENAME (-6)    /* empty domain name, or one with a NUL or non-ASCII byte */
#define SFY_ECODE (-7)    /* a SOCKS4 reply code outside 90..93 */

/* RFC 1928 §4 ATYP values; also used for the kind of a struct sfy_addr. */
#define SFY_ATYP_IPV4 1
#define SFY_ATYP_DOMAIN 3
#define SFY_ATYP_IPV6 4

#define SFY_CMD_CONNECT 1
#define SFY_CMD_BIND 2
#define SFY_CMD_UDP_ASSOCIATE 3

#define SFY_METHOD_NO_AUTH 0x00
#define SFY_METHOD_USERPASS 0x02
#define SFY_METHOD_NO_ACCEPTABLE 0xFF

#define SFY_S4_GRANTED 90

/* A SOCKS address: IPv4, IPv6 (network byte order in `ip`) or a domain name
 * (NUL-terminated, 1..255 bytes), plus a port in host byte order. */
struct sfy_addr {
    uint8_t atyp;
    uint8_t ip[16];
    char name[256];
    uint16_t port;
};

/* One reply: the REP (SOCKS5) or CD (SOCKS4) byte and the BND address. */
struct sfy_reply {
    uint8_t code;
    struct sfy_addr addr;
};

/* RFC 1928 §3: VER=5 NMETHODS METHODS... */
int sfy_s5_encode_greeting(uint8_t *out, size_t cap, const uint8_t *methods, size_t n_methods);
/* RFC 1928 §3: VER=5 METHOD. */
int sfy_s5_parse_method(const uint8_t *buf, size_t len, uint8_t *method);
/* RFC 1929 §2: VER=1 ULEN UNAME PLEN PASSWD (each 1..255 bytes on the wire; 0 allowed). */
int sfy_s5_encode_userpass(uint8_t *out, size_t cap, const uint8_t *user, size_t user_len,
                           const uint8_t *pass, size_t pass_len);
/* RFC 1929 §2: VER=1 STATUS; *success = (STATUS == 0). */
int sfy_s5_parse_auth_result(const uint8_t *buf, size_t len, int *success);
/* RFC 1928 §4: VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT. */
int sfy_s5_encode_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sfy_addr *dst);
/* RFC 1928 §6: VER=5 REP RSV ATYP BND.ADDR BND.PORT. */
int sfy_s5_parse_reply(const uint8_t *buf, size_t len, struct sfy_reply *out);
/* SOCKS4.protocol / SOCKS4A.protocol: VN=4 CD DSTPORT DSTIP USERID NUL [HOST NUL]. A domain
 * destination uses the 4a form with DSTIP 0.0.0.1; IPv6 is SFY_EINVAL. */
int sfy_s4_encode_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sfy_addr *dst,
                          const uint8_t *userid, size_t userid_len);
/* SOCKS4.protocol: VN=0 CD DSTPORT DSTIP (VN 4 accepted leniently). */
int sfy_s4_parse_reply(const uint8_t *buf, size_t len, struct sfy_reply *out);
/* RFC 1928 §7: RSV(2)=0 FRAG ATYP DST.ADDR DST.PORT; returns the header length. */
int sfy_udp_encode_header(uint8_t *out, size_t cap, uint8_t frag, const struct sfy_addr *dst);
/* RFC 1928 §7: parse the header of a datagram; returns the header length (data follows).
 * A truncated datagram is SFY_EINVAL (datagrams do not grow), never SFY_NEED_MORE. */
int sfy_udp_parse_header(const uint8_t *buf, size_t len, struct sfy_addr *addr, uint8_t *frag);

#endif
