/*
 * listen_rule: print sfy_listen_rule() (csrc/bind.h) for one case, so the rule is tested as
 * the pure function the library uses. Build: cc -I csrc listen_rule.c
 *
 *     listen_rule FAMILY SOCKTYPE PORT HAVE_PEER PEER_PROXIED    ->  "bind" or "local"
 */
#include <stdio.h>
#include <stdlib.h>

#include "bind.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s FAMILY SOCKTYPE PORT HAVE_PEER PEER_PROXIED\n", argv[0]);
        return 2;
    }
    enum sfy_listen_plan plan =
        sfy_listen_rule(atoi(argv[1]), atoi(argv[2]), (unsigned)strtoul(argv[3], NULL, 10),
                        atoi(argv[4]), atoi(argv[5]));
    puts(plan == SFY_LISTEN_BIND ? "bind" : "local");
    return 0;
}
