/*
 * env_follow.c -- the shim follows children whose environment was replaced.
 *
 * A child normally inherits LD_PRELOAD and SOCKSIFY_* with the rest of the environment. A
 * program may give it another one (execle, execve, posix_spawn with its own envp: Python's
 * subprocess.run(env={...}), `env -i`, a daemon that scrubs its children's environment);
 * without the shim and its configuration the child would connect directly, which is what
 * socksify must never let happen (SPEC: children and exec'd programs included). So the
 * exec hooks (hook_exec.c) put back what the new environment lacks:
 *
 * - LD_PRELOAD as the program was started with it, when the new environment has none, or
 *   in front of the new value when that does not contain it (the loader maps a library
 *   named twice once);
 * - each SOCKSIFY_* variable (SOCKSIFY_INHERIT aside, it is per exec) and all_proxy /
 *   ALL_PROXY the program was started with, when the new environment has no value for it.
 *   A value the new environment sets is kept: a child given its own proxy uses it.
 *   ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS follow the same way: they configure a
 *   sanitizer runtime preloaded in front of the shim (a sanitizer build's tests), which
 *   comes back with LD_PRELOAD.
 *
 * The values are those of the initial environment, taken by the constructor (the strings
 * stay valid whatever the program does to environ; init.c). Nothing here allocates and
 * the scan is a few string compares per variable, so it may run in a vfork() child.
 */
#include "socksify.h"

#include <string.h>

extern char **environ;

static const char *followed[SFY_FOLLOW_MAX]; /* "NAME=value" of the initial environment */
static size_t n_followed;
static const char *start_preload; /* the value of LD_PRELOAD=, or NULL */

static const char preload_name[] = "LD_PRELOAD=";

static int is_followed(const char *entry)
{
    static const char *const names[] = {"all_proxy=", "ALL_PROXY=", "ASAN_OPTIONS=",
                                        "UBSAN_OPTIONS=", "LSAN_OPTIONS="};
    size_t i;
    if (strncmp(entry, "SOCKSIFY_", 9) == 0)
        return strncmp(entry, SFY_INHERIT_VAR "=", sizeof SFY_INHERIT_VAR) != 0
               && strchr(entry, '=') != NULL;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0)
            return 1;
    return 0;
}

void sfy_follow_take(void)
{
    char **e;
    if (n_followed || start_preload)
        return;
    for (e = environ; e && *e; e++) {
        if (strncmp(*e, preload_name, sizeof preload_name - 1) == 0) {
            if ((*e)[sizeof preload_name - 1])
                start_preload = *e + sizeof preload_name - 1;
        } else if (n_followed < SFY_FOLLOW_MAX && is_followed(*e)) {
            followed[n_followed++] = *e;
        }
    }
}

/* The entry of envp with the same "NAME=" as entry, or NULL. */
static const char *find(char *const *envp, const char *entry)
{
    size_t len = (size_t)(strchr(entry, '=') - entry) + 1;
    for (; envp && *envp; envp++)
        if (strncmp(*envp, entry, len) == 0)
            return *envp;
    return NULL;
}

static int preload_needed(char *const *envp, const char **theirs)
{
    const char *found;
    *theirs = NULL;
    if (!start_preload)
        return 0;
    found = find(envp, preload_name);
    if (!found)
        return 1;
    *theirs = found + sizeof preload_name - 1;
    return strstr(*theirs, start_preload) == NULL;
}

int sfy_follow_missing(char *const *envp)
{
    const char *theirs;
    size_t i;
    int missing = preload_needed(envp, &theirs);
    for (i = 0; i < n_followed; i++)
        missing += find(envp, followed[i]) == NULL;
    return missing;
}

size_t sfy_follow_append(char **out, size_t n, char *const *envp, char *buf, size_t cap)
{
    const char *theirs;
    size_t i;
    if (preload_needed(envp, &theirs)) {
        size_t len = strlen(start_preload);
        if (theirs && sizeof preload_name + len + 1 + strlen(theirs) <= cap) {
            /* ours in front of theirs (the caller dropped their entry from out) */
            memcpy(buf, preload_name, sizeof preload_name - 1);
            memcpy(buf + sizeof preload_name - 1, start_preload, len);
            buf[sizeof preload_name - 1 + len] = ':';
            strcpy(buf + sizeof preload_name + len, theirs);
            out[n++] = buf;
        } else {
            out[n++] = (char *)start_preload - (sizeof preload_name - 1);
        }
    }
    for (i = 0; i < n_followed; i++)
        if (!find(envp, followed[i]))
            out[n++] = (char *)followed[i];
    return n;
}

int sfy_follow_replaces(const char *entry, char *const *envp)
{
    const char *theirs;
    return strncmp(entry, preload_name, sizeof preload_name - 1) == 0
           && preload_needed(envp, &theirs);
}
