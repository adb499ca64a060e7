"""cffi builder for ``socksify._native``: the native shim's pure internals, for tests.

Follows the cffi docs' shape: ``ffibuilder = FFI()``, ``cdef()`` with plain declarations,
``set_source()`` in API mode. Used by setup.py (``cffi_modules``) and runnable alone:
``python csrc/build_ffi.py`` builds the module in the current directory.
"""

import os
import sys

from cffi import FFI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import buildcfg  # noqa: E402

ffibuilder = FFI()
ffibuilder.cdef(
    """
    #define SFY_NEED_MORE ...
    #define SFY_EVERSION ...
    #define SFY_EATYP ...
    #define SFY_ERSV ...
    #define SFY_EINVAL ...
    #define SFY_ESPACE ...
    #define SFY_ENAME ...
    #define SFY_ECODE ...
    #define SFY_ATYP_IPV4 ...
    #define SFY_ATYP_DOMAIN ...
    #define SFY_ATYP_IPV6 ...
    #define SFY_MAX_HOPS ...
    #define SFY_NOPROXY_MAX ...

    struct sfy_addr { uint8_t atyp; uint8_t ip[16]; char name[256]; uint16_t port; };
    struct sfy_reply { uint8_t code; struct sfy_addr addr; };

    int sfy_s5_encode_greeting(uint8_t *out, size_t cap, const uint8_t *methods, size_t n);
    int sfy_s5_parse_method(const uint8_t *buf, size_t len, uint8_t *method);
    int sfy_s5_encode_userpass(uint8_t *out, size_t cap, const uint8_t *user, size_t ulen,
                               const uint8_t *pass, size_t plen);
    int sfy_s5_parse_auth_result(const uint8_t *buf, size_t len, int *success);
    int sfy_s5_encode_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sfy_addr *);
    int sfy_s5_parse_reply(const uint8_t *buf, size_t len, struct sfy_reply *out);
    int sfy_s4_encode_request(uint8_t *out, size_t cap, uint8_t cmd, const struct sfy_addr *,
                              const uint8_t *userid, size_t userid_len);
    int sfy_s4_parse_reply(const uint8_t *buf, size_t len, struct sfy_reply *out);
    int sfy_udp_encode_header(uint8_t *out, size_t cap, uint8_t frag, const struct sfy_addr *);
    int sfy_udp_parse_header(const uint8_t *buf, size_t len, struct sfy_addr *a, uint8_t *frag);

    struct sfy_hop {
        char scheme[8]; int version; int remote_dns; char host[256]; uint16_t port;
        int has_user, has_pass; uint8_t user[256]; size_t user_len;
        uint8_t pass[256]; size_t pass_len;
    };
    struct sfy_net { int family; uint8_t addr[16]; int prefix; };
    struct sfy_noproxy { int everything; size_t n_names, n_suffixes, n_nets; ...; };
    struct sfy_config {
        int valid; int remote_dns; int log_level; size_t n_hops; struct sfy_net dns4, dns6;
        char error[512]; struct sfy_hop hops[8]; struct sfy_noproxy no_proxy;
    };
    int sfy_parse_chain(const char *text, struct sfy_hop *hops, size_t max_hops,
                        size_t *n_hops, char *err, size_t errlen);
    int sfy_parse_no_proxy(const char *text, struct sfy_noproxy *out, char *err, size_t errlen);
    int sfy_parse_dns_range(const char *text, struct sfy_net *v4, struct sfy_net *v6,
                            char *err, size_t errlen);
    int sfy_parse_log_level(const char *text, int *level);
    void sfy_config_load(struct sfy_config *cfg, const char *proxy, const char *all_proxy_lc,
                         const char *all_proxy_uc, const char *no_proxy, const char *log,
                         const char *dns_range);
    int sfy_noproxy_match_name(const struct sfy_noproxy *np, const char *name);
    int sfy_noproxy_match_ip(const struct sfy_noproxy *np, int family, const uint8_t *ip);

    int sfy_errno_for_reply(int version, int code);

    struct sfy_dnsmap;
    struct sfy_dnsmap *sfy_dnsmap_create(uint32_t slots);
    void sfy_dnsmap_destroy(struct sfy_dnsmap *map);
    uint32_t sfy_dnsmap_capacity(const struct sfy_dnsmap *map);
    uint32_t sfy_dnsmap_used(const struct sfy_dnsmap *map);
    int sfy_dnsmap_intern(struct sfy_dnsmap *map, const char *name, uint32_t *slot);
    int sfy_dnsmap_lookup(const struct sfy_dnsmap *map, uint32_t slot, char *out, size_t cap);
    uint32_t sfy_range_slots(const struct sfy_net *net, uint32_t limit);
    void sfy_placeholder_ip(const struct sfy_net *net, uint32_t slot, uint8_t *ip);
    int sfy_placeholder_slot(const struct sfy_net *net, int family, const uint8_t *ip,
                             uint32_t *slot);
    """
)
ffibuilder.set_source(
    "socksify._native",
    '#include "socksify.h"',
    sources=buildcfg.binding_sources(),
    include_dirs=[os.path.relpath(buildcfg.CSRC)],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=buildcfg.compile_args(os.environ),
    extra_link_args=buildcfg.link_args(os.environ),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
