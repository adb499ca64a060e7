/*
 * errmap.c -- SOCKS reply code -> errno. Mirrors socksify/errors.py (REPLY5_ERRNO,
 * REPLY4_ERRNO, ERRNO_UNKNOWN_REPLY); tests/vectors/errno_map.json holds both to SPEC.md's
 * table (tests/native/test_errmap.py).
 */
#include "socksify.h"

#include <errno.h>

/* errno for a failure reply. version 5: RFC 1928 §6 REP; version 4: SOCKS4 CD. Unknown
 * codes (Tor's extended X'F0'-X'F7', unassigned values) give ECONNREFUSED. */
int sfy_errno_for_reply(int version, int code)
{
    if (version == 5) {
        switch (code) {
        case 1: return ECONNREFUSED; /* general SOCKS server failure */
        case 2: return EACCES;       /* connection not allowed by ruleset */
        case 3: return ENETUNREACH;  /* network unreachable */
        case 4: return EHOSTUNREACH; /* host unreachable */
        case 5: return ECONNREFUSED; /* connection refused */
        case 6: return ETIMEDOUT;    /* TTL expired */
        case 7: return EOPNOTSUPP;   /* command not supported */
        case 8: return EAFNOSUPPORT; /* address type not supported */
        default: return ECONNREFUSED;
        }
    }
    switch (code) {
    case 91: return ECONNREFUSED; /* request rejected or failed */
    case 92: return EACCES;       /* cannot connect to identd on the client */
    case 93: return EACCES;       /* identd reports a different user-id */
    default: return ECONNREFUSED;
    }
}
