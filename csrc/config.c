/*
 * config.c -- proxy URL, chain, NO_PROXY, DNS range and log level parsing. Pure: no
 * syscalls, no allocation, no globals (init.c calls sfy_config_load once with getenv()).
 *
 * Reference: socksify/proxy.py. This parser follows its rules case by case and both are
 * held to tests/vectors/proxy_urls.json (tests/native/test_config.py):
 *   SCHEME://[USER[:PASSWORD]@]HOST[:PORT], schemes socks4/socks4a/socks5/socks5h
 *   (case-insensitive), default port 1080, IPv6 in brackets, USER/PASSWORD percent-decoded
 *   (UTF-8, at most 255 bytes: RFC 1929 §2 ULEN/PLEN), one trailing '/' tolerated, a comma-
 *   separated list is a chain. Error messages name the bad part and never the password.
 */
#include "socksify.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SCHEME_LIST "socks4, socks4a, socks5, socks5h"

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The URL for messages, with any password replaced by *** (proxy.py _redact). */
static void redact(const char *url, char *out, size_t cap);

/* fail() for a message about one URL: "<fmt ...> in '<url, redacted>'<suffix>". The
 * redacted copy is made here, on the error path only: a URL that parses costs no copy and
 * no printf (noinline keeps the 2 KiB buffer out of the parsers' frames, so a successful
 * parse stays within a page or two of stack; the start-up of every preloaded program and
 * of socksify-run pays for each new stack page it touches: scripts/bench_native_shim.py). */
static void fail_in(char *err, size_t errlen, const char *url, const char *suffix,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6), noinline, cold));
static void fail_in(char *err, size_t errlen, const char *url, const char *suffix,
                    const char *fmt, ...)
{
    char shown[2048];
    va_list ap;
    int n;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= errlen)
        return;
    redact(url, shown, sizeof shown);
    snprintf(err + n, errlen - (size_t)n, " in '%s'%s", shown, suffix);
}

/* Copy [s, s+n) into out (cap bytes) as a C string, trimming ASCII spaces at both ends. */
static void copy_trimmed(char *out, size_t cap, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void redact(const char *url, char *out, size_t cap)
{
    const char *sep = strstr(url, "://"), *user, *colon, *at = NULL, *p;
    size_t n;
    if (!sep) {
        snprintf(out, cap, "%s", url);
        return;
    }
    user = sep + 3;
    colon = user;
    while (*colon && *colon != '/' && *colon != '@' && *colon != ':')
        colon++;
    if (*colon == ':') {
        for (p = colon + 1; *p && *p != '/'; p++)
            if (*p == '@')
                at = p;
    }
    if (!at) {
        snprintf(out, cap, "%s", url);
        return;
    }
    n = (size_t)(colon + 1 - url);
    snprintf(out, cap, "%.*s***%s", (int)n, url, at);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decode [s, s+n) (urllib.parse.unquote_to_bytes: a bad escape stays literal). */
static size_t percent_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t byte;
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
            hexval(s[i + 2]) >= 0) {
            byte = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 3;
        } else {
            byte = (uint8_t)s[i++];
        }
        if (o < cap)
            out[o] = byte;
        o++;
    }
    return o;
}

/* 1 when buf[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int valid_utf8(const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = b[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((b[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (b[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* proxy.py _HOST_NAME: ^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?\.?$ */
static int valid_host_name(const char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '.')
        n--;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        int word = isalnum(c) || c == '_';
        if (!isascii(c))
            return 0;
        if ((i == 0 || i == n - 1) ? !word : !(word || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int parse_port(const char *text, uint16_t *port)
{
    unsigned long v = 0;
    if (!*text)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || v > 65535)
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* An IPv6 zone id (RFC 6874 ZoneID, percent-decoded) names an interface: at most
 * IFNAMSIZ - 1 bytes, and we allow only [A-Za-z0-9._-] so no NUL, '%' or non-ASCII byte
 * can reach the host string (proxy.py _is_zone_id). */
#define SFY_ZONE_MAX 15

static int valid_zone(const uint8_t *z, size_t n)
{
    if (n == 0 || n > SFY_ZONE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isascii(z[i]) || !(isalnum(z[i]) || z[i] == '.' || z[i] == '_' || z[i] == '-'))
            return 0;
    return 1;
}

/* Parse HOST[:PORT] (proxy.py _parse_host_port). */
static int parse_host_port(const char *hp, struct sfy_hop *hop, const char *url, char *err,
                           size_t errlen)
{
    const char *port_text = NULL;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        char literal[128], zone[SFY_ZONE_MAX + 1] = "";
        uint8_t ip[16];
        const char *zone_text = NULL; /* the zone id as written (after "%25"), for errors */
        size_t n, zone_len = 0;
        if (!end) {
            fail_in(err, errlen, url, "", "unclosed '[' in IPv6 address");
            return -1;
        }
        n = (size_t)(end - hp - 1);
        if (n >= sizeof literal) {
            fail_in(err, errlen, url, "", "bad IPv6 address");
            return -1;
        }
        memcpy(literal, hp + 1, n);
        literal[n] = '\0';
        char *pct = strchr(literal, '%');
        if (pct) { /* RFC 6874: the zone id's '%' is written "%25" */
            const char *z = pct + 1;
            if (strncmp(z, "25", 2) == 0)
                z += 2;
            zone_text = z;
            zone_len = percent_decode(z, strlen(z), (uint8_t *)zone, SFY_ZONE_MAX);
            *pct = '\0';
        }
        if (inet_pton(AF_INET6, literal, ip) != 1) {
            fail_in(err, errlen, url, "", "bad IPv6 address [%s]", literal);
            return -1;
        }
        if (zone_text) {
            if (!valid_zone((const uint8_t *)zone, zone_len)) {
                fail_in(err, errlen, url, "", "bad IPv6 zone id '%s'", zone_text);
                return -1;
            }
            zone[zone_len] = '\0';
        }
        inet_ntop(AF_INET6, ip, hop->host, sizeof hop->host);
        if (zone[0]) {
            size_t hl = strlen(hop->host);
            snprintf(hop->host + hl, sizeof hop->host - hl, "%%%s", zone);
        }
        if (end[1] && end[1] != ':') {
            fail_in(err, errlen, url, "", "unexpected '%s' after IPv6 address", end + 1);
            return -1;
        }
        if (end[1])
            port_text = end + 2;
    } else {
        const char *colon = strchr(hp, ':');
        size_t n;
        if (strchr(hp, ']')) {
            fail_in(err, errlen, url, "", "unmatched ']'");
            return -1;
        }
        if (colon && strchr(colon + 1, ':')) {
            fail_in(err, errlen, url, "", "IPv6 address must be in brackets, like "
                    "socks5://[::1]:1080,");
            return -1;
        }
        n = colon ? (size_t)(colon - hp) : strlen(hp);
        if (n == 0) {
            fail_in(err, errlen, url, "", "empty host");
            return -1;
        }
        if (n >= sizeof hop->host) {
            fail_in(err, errlen, url, "", "bad host (longer than 255 bytes)");
            return -1;
        }
        memcpy(hop->host, hp, n);
        hop->host[n] = '\0';
        if (!valid_host_name(hop->host)) {
            fail_in(err, errlen, url, "", "bad host '%s'", hop->host);
            return -1;
        }
        if (colon)
            port_text = colon + 1;
    }
    hop->port = 1080;
    if (port_text && parse_port(port_text, &hop->port) < 0) {
        fail_in(err, errlen, url, "", "bad port '%s' (1-65535)", port_text);
        return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    int version, remote_dns;
} SCHEMES[] = {{"socks4", 4, 0}, {"socks4a", 4, 1}, {"socks5", 5, 0}, {"socks5h", 5, 1}};

/* Parse one URL (proxy.py parse_proxy_url). */
static int parse_url(const char *text, size_t text_len, struct sfy_hop *hop, char *err,
                     size_t errlen)
{
    char url[2048], scheme[32], *rest;
    const char *sep, *at;
    size_t n;
    memset(hop, 0, sizeof *hop);
    copy_trimmed(url, sizeof url, text, text_len);
    sep = strstr(url, "://");
    if (!sep) {
        fail_in(err, errlen, url, ": use one of " SCHEME_LIST " (like socks5h://HOST:PORT)",
                "missing scheme");
        return -1;
    }
    n = (size_t)(sep - url);
    if (n >= sizeof scheme)
        n = sizeof scheme - 1;
    for (size_t i = 0; i < n; i++)
        scheme[i] = (char)tolower((unsigned char)url[i]);
    scheme[n] = '\0';
    for (size_t i = 0; i < sizeof SCHEMES / sizeof SCHEMES[0]; i++) {
        if (strcmp(scheme, SCHEMES[i].name) == 0) {
            memcpy(hop->scheme, SCHEMES[i].name, strlen(SCHEMES[i].name) + 1); /* < 8 */
            hop->version = SCHEMES[i].version;
            hop->remote_dns = SCHEMES[i].remote_dns;
        }
    }
    if (!hop->version) {
        fail_in(err, errlen, url, ": use one of " SCHEME_LIST, "unsupported scheme '%s://'",
                scheme);
        return -1;
    }
    /* HOST part, in place: the messages quote the URL as given, so the copy keeps its '/' */
    char host_part[2048];
    n = strlen(sep + 3);
    memcpy(host_part, sep + 3, n + 1);
    rest = host_part;
    if (n && rest[n - 1] == '/')
        rest[--n] = '\0';
    for (const char *c = "/?#"; *c; c++) {
        if (strchr(rest, *c)) {
            fail_in(err, errlen, url, "", "unexpected path, query or fragment '%c'", *c);
            return -1;
        }
    }
    at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *user_end = colon ? colon : at;
        hop->has_user = 1;
        hop->user_len = percent_decode(rest, (size_t)(user_end - rest), hop->user, 256);
        if (!valid_utf8(hop->user, hop->user_len < 256 ? hop->user_len : 256)) {
            fail_in(err, errlen, url, "", "user name is not UTF-8 after percent-decoding");
            return -1;
        }
        if (hop->user_len > 255) {
            fail_in(err, errlen, url, "", "user name longer than 255 bytes");
            return -1;
        }
        if (colon) {
            hop->has_pass = 1;
            hop->pass_len = percent_decode(colon + 1, (size_t)(at - colon - 1), hop->pass, 256);
            if (!valid_utf8(hop->pass, hop->pass_len < 256 ? hop->pass_len : 256)) {
                fail_in(err, errlen, url, "", "password is not UTF-8 after percent-decoding");
                return -1;
            }
            if (hop->pass_len > 255) {
                fail_in(err, errlen, url, "", "password longer than 255 bytes");
                return -1;
            }
        }
        if (hop->version == 4 && memchr(hop->user, 0, hop->user_len)) {
            fail_in(err, errlen, url, "", "NUL in SOCKS4 user id");
            return -1;
        }
    }
    return parse_host_port(at ? at + 1 : rest, hop, url, err, errlen);
}

/* 1 when [s, s+n) holds nothing but ASCII white space. */
static int blank(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    return n == 0;
}

static void fail_empty_hop(char *err, size_t errlen, size_t index, const char *chain)
    __attribute__((noinline, cold));
static void fail_empty_hop(char *err, size_t errlen, size_t index, const char *chain)
{
    char shown[2048];
    redact(chain, shown, sizeof shown);
    fail(err, errlen, "empty entry (hop %zu) in proxy chain '%s'", index, shown);
}

/* "hop N of the chain: " in front of the message parse_url left in err. */
static void prefix_hop(char *err, size_t errlen, size_t index) __attribute__((noinline, cold));
static void prefix_hop(char *err, size_t errlen, size_t index)
{
    char message[1024];
    if (!err || !errlen)
        return;
    snprintf(message, sizeof message, "%s", err);
    fail(err, errlen, "hop %zu of the chain: %s", index, message);
}

int sfy_parse_chain(const char *text, struct sfy_hop *hops, size_t max_hops, size_t *n_hops,
                    char *err, size_t errlen)
{
    /* proxy.py parse_chain: comma-separated, first hop nearest the client. No copies on
     * the way: parse_url() trims its part itself, and the messages are made on the error
     * paths only (fail_in), so a valid chain costs little stack (see fail_in). */
    size_t count = 1, index = 0;
    const char *p = text, *end;
    for (const char *c = text; *c; c++)
        count += *c == ',';
    if (count == 1 && blank(text, strlen(text))) {
        fail(err, errlen, "empty proxy URL");
        return -1;
    }
    *n_hops = 0;
    while (1) {
        end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        index++;
        if (blank(p, n)) {
            fail_empty_hop(err, errlen, index, text);
            return -1;
        }
        if (index > max_hops) {
            fail(err, errlen, "proxy chain longer than %zu hops", max_hops);
            return -1;
        }
        if (parse_url(p, n, &hops[index - 1], err, errlen) < 0) {
            if (count > 1)
                prefix_hop(err, errlen, index);
            return -1;
        }
        *n_hops = index;
        if (!end)
            return 0;
        p = end + 1;
    }
}

/* Copy the C string text into buf (cap bytes), cut at cap - 1 as snprintf would (no
 * printf on the start-up path: see fail_in). */
static void copy_cut(char *buf, size_t cap, const char *text)
{
    size_t n = strnlen(text, cap - 1);
    memcpy(buf, text, n);
    buf[n] = '\0';
}

/* Parse an IP address (no brackets, no zone): family and bytes, or 0. */
static int parse_ip(const char *text, uint8_t *ip)
{
    char buf[64];
    copy_cut(buf, sizeof buf, text);
    char *pct = strchr(buf, '%');
    if (pct)
        *pct = '\0';
    if (inet_pton(AF_INET, buf, ip) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, buf, ip) == 1)
        return AF_INET6;
    return 0;
}

/* "a.b.c.d/n", "x::/n" or a bare address; host bits masked (strict=False). 0 or -1. */
static int parse_net(const char *text, struct sfy_net *net)
{
    char buf[128];
    char *slash;
    int bits;
    copy_cut(buf, sizeof buf, text);
    slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(net, 0, sizeof *net);
    net->family = parse_ip(buf, net->addr);
    if (!net->family || strchr(buf, '%'))
        return -1;
    bits = net->family == AF_INET ? 32 : 128;
    net->prefix = bits;
    if (slash) {
        char *q = slash + 1;
        int v = 0;
        if (!*q)
            return -1;
        for (; *q; q++) {
            if (*q < '0' || *q > '9' || v > bits)
                return -1;
            v = v * 10 + (*q - '0');
        }
        if (v > bits)
            return -1;
        net->prefix = v;
    }
    for (int i = net->prefix; i < bits; i++)
        net->addr[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
    return 0;
}

int sfy_net_contains(const struct sfy_net *net, int family, const uint8_t *ip)
{
    if (net->family != family)
        return 0;
    for (int i = 0; i < net->prefix; i++) {
        uint8_t bit = (uint8_t)(0x80 >> (i % 8));
        if ((net->addr[i / 8] & bit) != (ip[i / 8] & bit))
            return 0;
    }
    return 1;
}

int sfy_parse_no_proxy(const char *text, struct sfy_noproxy *out, char *err, size_t errlen)
{
    /* proxy.py parse_no_proxy: entries separated by commas or white space. */
    const char *p = text ? text : "";
    /* Only the counts: the 32 KB of entry arrays are read below their counts only, and
     * zeroing them cost every preloaded process 8 page faults at start (the bench). */
    out->everything = 0;
    out->n_names = out->n_suffixes = out->n_nets = 0;
    while (*p) {
        char entry[300], bare[300], name[300];
        size_t n = 0;
        while (*p && (*p == ',' || isspace((unsigned char)*p)))
            p++;
        while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n]))
            n++;
        if (!n)
            break;
        if (n >= sizeof entry) {
            fail(err, errlen, "bad entry in no-proxy list (longer than 255 bytes)");
            return -1;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        p += n;
        if (strcmp(entry, "*") == 0) {
            out->everything = 1;
            continue;
        }
        copy_cut(bare, sizeof bare, entry);
        if (bare[0] == '[' && n > 1 && bare[n - 1] == ']') {
            memmove(bare, bare + 1, n - 2);
            bare[n - 2] = '\0';
        }
        if (strchr(bare, '/') || parse_ip(bare, (uint8_t[16]){0})) {
            if (out->n_nets >= SFY_NOPROXY_MAX) {
                fail(err, errlen, "more than %d addresses in no-proxy list", SFY_NOPROXY_MAX);
                return -1;
            }
            if (parse_net(bare, &out->nets[out->n_nets]) < 0) {
                fail(err, errlen, "bad CIDR '%s' in no-proxy list", entry);
                return -1;
            }
            out->n_nets++;
            continue;
        }
        size_t k;
        for (k = 0; entry[k]; k++)
            name[k] = (char)tolower((unsigned char)entry[k]);
        while (k && name[k - 1] == '.')
            k--;
        name[k] = '\0';
        char *nm = name;
        if (nm[0] == '*' && nm[1] == '.') /* curl and wget users write "*.example.org" */
            nm++;
        if (nm[0] == '.') {
            if (!valid_host_name(nm + 1)) {
                fail(err, errlen, "bad domain '%s' in no-proxy list", entry);
                return -1;
            }
            if (out->n_suffixes >= SFY_NOPROXY_MAX) {
                fail(err, errlen, "more than %d domains in no-proxy list", SFY_NOPROXY_MAX);
                return -1;
            }
            snprintf(out->suffixes[out->n_suffixes++], 256, "%.255s", nm + 1);
        } else if (valid_host_name(nm)) {
            if (out->n_names >= SFY_NOPROXY_MAX) {
                fail(err, errlen, "more than %d names in no-proxy list", SFY_NOPROXY_MAX);
                return -1;
            }
            snprintf(out->names[out->n_names++], 256, "%.255s", nm);
        } else {
            fail(err, errlen, "bad entry '%s' in no-proxy list (hosts, .domains, IPs or CIDRs)",
                 entry);
            return -1;
        }
    }
    return 0;
}

int sfy_noproxy_match_name(const struct sfy_noproxy *np, const char *host)
{
    char name[256];
    uint8_t ip[16];
    int family;
    size_t n;
    if (np->everything)
        return 1;
    family = parse_ip(host, ip);
    if (family)
        return sfy_noproxy_match_ip(np, family, ip);
    for (n = 0; host[n] && n < sizeof name - 1; n++)
        name[n] = (char)tolower((unsigned char)host[n]);
    while (n && name[n - 1] == '.')
        n--;
    name[n] = '\0';
    for (size_t i = 0; i < np->n_names; i++)
        if (strcmp(np->names[i], name) == 0)
            return 1;
    for (size_t i = 0; i < np->n_suffixes; i++) {
        size_t s = strlen(np->suffixes[i]);
        if (strcmp(name, np->suffixes[i]) == 0)
            return 1;
        if (n > s && name[n - s - 1] == '.' && strcmp(name + n - s, np->suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

int sfy_noproxy_match_ip(const struct sfy_noproxy *np, int family, const uint8_t *ip)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (np->everything)
        return 1;
    if (family == AF_INET6 && memcmp(ip, mapped, 12) == 0) {
        family = AF_INET;
        ip += 12;
    }
    for (size_t i = 0; i < np->n_nets; i++)
        if (sfy_net_contains(&np->nets[i], family, ip))
            return 1;
    return 0;
}

int sfy_parse_log_level(const char *text, int *level)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    char buf[16];
    copy_trimmed(buf, sizeof buf, text, strlen(text));
    for (char *c = buf; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (int i = 0; i < 4; i++) {
        if (strcmp(buf, names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    return -1;
}

int sfy_parse_dns_range(const char *text, struct sfy_net *v4, struct sfy_net *v6, char *err,
                        size_t errlen)
{
    /* proxy.py parse_dns_range: one IPv4 CIDR (required), optionally one IPv6 CIDR. */
    const char *p = text;
    memset(v4, 0, sizeof *v4);
    memset(v6, 0, sizeof *v6);
    while (1) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char entry[128];
        struct sfy_net net;
        copy_trimmed(entry, sizeof entry, p, n);
        if (entry[0]) {
            if (parse_net(entry, &net) < 0) {
                fail(err, errlen, "bad CIDR '%s' in DNS placeholder range", entry);
                return -1;
            }
            int bits = net.family == AF_INET ? 32 : 128;
            int multicast = net.family == AF_INET ? (net.addr[0] & 0xF0) == 0xE0 && net.prefix >= 4
                                                  : net.addr[0] == 0xFF && net.prefix >= 8;
            int loopback = net.family == AF_INET ? net.addr[0] == 127 && net.prefix >= 8
                                                 : net.prefix == 128 && net.addr[15] == 1 &&
                                                       !memcmp(net.addr, (uint8_t[15]){0}, 15);
            if (multicast || loopback) {
                fail(err, errlen, "DNS placeholder range '%s' is multicast or loopback", entry);
                return -1;
            }
            if (bits - net.prefix < 8) {
                fail(err, errlen, "DNS placeholder range '%s' is too small (/24 or /120 min)",
                     entry);
                return -1;
            }
            struct sfy_net *slot = net.family == AF_INET ? v4 : v6;
            if (slot->family) {
                fail(err, errlen, "more than one IPv%d DNS placeholder range",
                     net.family == AF_INET ? 4 : 6);
                return -1;
            }
            *slot = net;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (!v4->family) {
        fail(err, errlen, "DNS placeholder range '%s' has no IPv4 CIDR", text);
        return -1;
    }
    return 0;
}

static int is_socks_url(const char *v)
{
    while (v && isspace((unsigned char)*v))
        v++;
    return v && strncasecmp(v, "socks", 5) == 0;
}

static int nonempty(const char *v)
{
    return v && *v;
}

void sfy_config_load(struct sfy_config *cfg, const char *proxy, const char *all_proxy_lc,
                     const char *all_proxy_uc, const char *no_proxy, const char *log,
                     const char *dns_range)
{
    /* proxy.py load_settings: SOCKSIFY_PROXY, then all_proxy / ALL_PROXY holding a socks
     * URL (in that order, as curl); none is an error (we never run unproxied). */
    char err[sizeof cfg->error - 64];
    const char *source = "SOCKSIFY_PROXY";
    /* Every field but the big arrays (hops[] and the no-proxy lists are used below their
     * counts only; sfy_parse_chain / sfy_parse_no_proxy set those counts). */
    cfg->valid = 0;
    cfg->error[0] = '\0';
    cfg->n_hops = 0;
    cfg->remote_dns = 0;
    cfg->no_proxy.everything = 0;
    cfg->no_proxy.n_names = cfg->no_proxy.n_suffixes = cfg->no_proxy.n_nets = 0;
    memset(&cfg->dns4, 0, sizeof cfg->dns4);
    memset(&cfg->dns6, 0, sizeof cfg->dns6);
    cfg->log_level = SFY_LOG_ERROR;
    if (nonempty(log) && sfy_parse_log_level(log, &cfg->log_level) < 0) {
        snprintf(cfg->error, sizeof cfg->error,
                 "log level: bad log level '%.32s': use one of error, warning, info, debug", log);
        return;
    }
    if (sfy_parse_dns_range(nonempty(dns_range) ? dns_range : "240.0.0.0/8,100::/64",
                            &cfg->dns4, &cfg->dns6, err, sizeof err) < 0) {
        snprintf(cfg->error, sizeof cfg->error, "SOCKSIFY_DNS_RANGE: %s", err);
        return;
    }
    if (sfy_parse_no_proxy(no_proxy, &cfg->no_proxy, err, sizeof err) < 0) {
        snprintf(cfg->error, sizeof cfg->error, "no-proxy list: %s", err);
        return;
    }
    if (!nonempty(proxy)) {
        proxy = NULL;
        if (is_socks_url(all_proxy_lc)) {
            source = "all_proxy";
            proxy = all_proxy_lc;
        } else if (is_socks_url(all_proxy_uc)) {
            source = "ALL_PROXY";
            proxy = all_proxy_uc;
        }
    }
    if (!proxy) {
        snprintf(cfg->error, sizeof cfg->error,
                 "no proxy configured: set SOCKSIFY_PROXY (like socks5h://127.0.0.1:1080); "
                 "socksify never runs unproxied");
        return;
    }
    if (sfy_parse_chain(proxy, cfg->hops, SFY_MAX_HOPS, &cfg->n_hops, err, sizeof err) < 0) {
        snprintf(cfg->error, sizeof cfg->error, "%s: %s", source, err);
        cfg->n_hops = 0;
        return;
    }
    cfg->remote_dns = cfg->hops[cfg->n_hops - 1].remote_dns;
    cfg->valid = 1;
}
