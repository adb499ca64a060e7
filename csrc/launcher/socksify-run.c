/*
 * socksify-run.c -- the native `socksify-run` launcher (no Python start on every run).
 *
 *     socksify-run [--proxy URL[,URL...]] [--no-proxy LIST] [--log-level LEVEL]
 *                  [--print-library] [--] command [args...]
 *
 * It does what socksify/run.py does (the two are tested against the same behaviour in
 * tests/native/test_run.py): parse the same flags, validate the configuration with the
 * library's own parser (csrc/config.c, linked in), export SOCKSIFY_*, put libsocksify.so in
 * front of LD_PRELOAD (after a sanitizer runtime), refuse what the loader would not preload
 * into (static, set-uid/set-gid, Go: exit 126, messages as socksify/_preload.py), then
 * execvp (127 when not found). Errors are `socksify: error: ...` lines, exit 2.
 *
 * Where the library is (decision, measured in scripts/bench_native_shim.py): the build puts
 * this binary in TWO places, next to the library inside the package
 * (socksify/socksify-run: found through /proc/self/exe, works for every install kind,
 * editable included) and, as a script (setup.py BuildScripts), into the installation's bin/ (the `socksify-run`
 * on PATH: no wrapper, no interpreter, ~0.3 ms). The bin/ copy finds the library by
 *   1. $SOCKSIFY_LIBRARY (as socksify/_preload.py),
 *   2. <dir of this program>/libsocksify.so (the in-package copy),
 *   3. the LIBRARY HINT the build stamped into this binary (setup.py, after linking:
 *      buildcfg.stamp_library_hint): an editable or in-place build knows the library's
 *      absolute path (the source tree); a wheel build knows where the library lands
 *      relative to bin/ (../lib/python3.X/site-packages/socksify/libsocksify.so, from
 *      sysconfig). One stat() when it is right; when the file is not there (a moved
 *      checkout, a system install under dist-packages) the search below runs as before,
 *   4. <dir>/../lib/python3*\/{site,dist}-packages/socksify/libsocksify.so (a venv, pip
 *      install --user into ~/.local, a system install into /usr/local or /usr),
 *   5. an editable install (pip install -e) in those site directories: the package path
 *      that setuptools' __editable__ finder module (or .pth file) names,
 * and when none exists (an odd layout) it runs the Python
 * implementation instead: `<dir>/python3 -m socksify.run ARGS` (a venv's interpreter), else
 * `python3` from PATH. Correct everywhere, fast in the usual layouts.
 *
 * Why the hint (measured, scripts/bench --only curl): the search of an editable install's
 * bin/ copy opened lib/, scanned site-packages (~280 entries), read the finder module and
 * resolved the path (~30 system calls, 143k instructions under callgrind): ~0.2 ms of every
 * run. With the hint it is one stat().
 *
 * Per run it allocates nothing (the program's environment is built on the stack, not with
 * setenv(); musl's first allocation costs brk/mmap calls and page faults) and reads the
 * program's first KiB once for the ELF checks: 50k instructions, ~15 system calls, 12 page
 * faults up to the exec (was 17: each stack or data page touched for the first time is a
 * fault, ~1.5-3 us on the bench VM, so the rare paths' PATH_MAX buffers live in frames of
 * their own (noinline) and nothing on the way calls printf: `perf stat -e page-faults`).
 * In a spawn loop (posix_spawn + waitpid, medians of 2,000) it costs ~48 us more than a
 * static musl program that only execs its argument (was ~64 us).
 *
 * Which C library (decision, measured): the launcher's own execve is paid on every run. It
 * is linked statically (no dynamic loader) and, when musl-gcc is installed, against musl:
 * static glibc start-up alone costs ~0.25 ms on the bench machine (ifunc relocations, TLS,
 * tunables, ~26 page faults for an empty main), static musl ~0.03 ms (5 faults). The whole
 * launcher went 0.28 -> 0.09 ms task-clock and 39 -> 19 page faults (perf stat -r 300,
 * up to the exec). Nothing here depends on which one (exec_program() is os.execvp's loop,
 * not the libc's execvp); csrc/buildcfg.py launcher_cc() decides, setup.py falls back.
 *
 * This file is NOT part of libsocksify.so (csrc/buildcfg.py preload_sources() takes only
 * the .c files directly in csrc/, not subdirectories); it links config.c alone, which is pure.
 */
#include "../socksify.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIBRARY_NAME "libsocksify.so"
#define EXIT_USAGE 2
#define EXIT_NOT_COVERABLE 126
#define EXIT_NOT_FOUND 127

/* sfy_log_level is defined by log.c in the library; config.c does not use it. */

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "socksify: error: %s\n", buf);
    exit(status);
}

static void usage(FILE *out)
{
    fputs("usage: socksify-run [-h] [--print-library] [--proxy URL[,URL...]] [--no-proxy LIST]\n"
          "                    [--log-level LEVEL] ...\n"
          "\n"
          "Run a program with its network traffic sent through SOCKS proxies (native\n"
          "LD_PRELOAD shim; children and exec'd programs included).\n"
          "\n"
          "positional arguments:\n"
          "  command               program and its arguments\n"
          "\n"
          "options:\n"
          "  -h, --help            show this help message and exit\n"
          "  --print-library       print the absolute path of the preload library and exit\n"
          "\n"
          "proxy settings (flags win over the environment):\n"
          "  --proxy URL[,URL...]  proxy or chain, like socks5h://user:pass@127.0.0.1:1080\n"
          "                        (default: $SOCKSIFY_PROXY, else a socks URL in $ALL_PROXY)\n"
          "  --no-proxy LIST       hosts, .domain suffixes, IPs and CIDRs reached directly\n"
          "                        (default: $SOCKSIFY_NO_PROXY; empty: everything is\n"
          "                        proxied, loopback included)\n"
          "  --log-level LEVEL     one of error, warning, info, debug (default: $SOCKSIFY_LOG,\n"
          "                        else error)\n",
          out);
}

/* ---------------------------------------------------------------- finding the library */

/* snprintf into buf: 1 when the whole text fits (a cut path would name another file). */
static int fits(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fits(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

/* "[dir, dir+dlen)/name" into out (just name when dlen is 0), cut at cap - 1 as snprintf
 * would: 1 when the whole path fits. No printf: see append(). */
static int join_path(char *out, size_t cap, const char *dir, size_t dlen, const char *name)
{
    size_t nlen = strlen(name), need = dlen + (dlen ? 1 : 0) + nlen;
    if (need < cap) {
        memcpy(out, dir, dlen);
        if (dlen)
            out[dlen] = '/';
        memcpy(out + dlen + (dlen ? 1 : 0), name, nlen + 1);
        return 1;
    }
    if (cap) /* the rare cut path, as snprintf leaves it */
        snprintf(out, cap, "%.*s%s%s", (int)(dlen < INT_MAX ? dlen : 0), dir, dlen ? "/" : "",
                 name);
    return 0;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* path as an absolute path into out: copied when it is one already and has no "." or ".."
 * component nor "//" (what setuptools' finder and the build's hint give: no realpath(),
 * whose readlink per component the common case does not need), else realpath(). 1 or 0. */
static int absolute_path(const char *path, char *out, size_t cap)
{
    size_t n = strlen(path);
    if (path[0] == '/' && !strstr(path, "/./") && !strstr(path, "/../") && !strstr(path, "//") &&
        n < cap) {
        memcpy(out, path, n + 1);
        return 1;
    }
    return cap >= PATH_MAX && realpath(path, out) != NULL;
}

/* The library hint (see the header comment): HINT_MARKER then the path, NUL-terminated.
 * setup.py writes the path into the linked binary (buildcfg.stamp_library_hint finds the
 * marker, which occurs nowhere else); unstamped, the path is empty. volatile: the bytes the
 * file holds must be read at run time, not the empty string the compiler saw. */
#define HINT_MARKER "@(#)socksify-library-hint:"
#define HINT_SIZE 4096
static volatile const char library_hint[HINT_SIZE] __attribute__((used)) = HINT_MARKER;

static int relative_hint(const char *dir, char *out, size_t cap) __attribute__((noinline));
static int canonical_copy(char *out, size_t cap) __attribute__((noinline));

/* The stamped library path into out: absolute as stamped, or relative to dir (the real
 * directory of this program, so leading "../" are taken off it lexically). 1 when it names
 * a regular file, else 0 (no hint, or the file is not there; out may have changed). */
static int hinted_library(const char *dir, char *out, size_t cap)
{
    size_t i, off = sizeof HINT_MARKER - 1;
    if (library_hint[off] != '/')
        return library_hint[off] && relative_hint(dir, out, cap);
    /* absolute (an in-place build): read into out, no copy on the stack */
    for (i = 0; i < cap - 1 && off + i < HINT_SIZE - 1 &&
                (out[i] = library_hint[off + i]) != '\0'; i++)
        ;
    if (i == cap - 1 || off + i == HINT_SIZE - 1)
        return 0;
    out[i] = '\0';
    if (!is_file(out))
        return 0;
    if (!strstr(out, "/./") && !strstr(out, "/../") && !strstr(out, "//"))
        return 1;
    return canonical_copy(out, cap);
}

/* out (an absolute path with a "." or ".." part or "//") made canonical: 1, or 0. */
static int canonical_copy(char *out, size_t cap)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", out);
    return absolute_path(copy, out, cap);
}

/* A hint relative to dir (a wheel build: ../lib/python3.X/site-packages/...): 1 and the
 * library's path in out when it names a file. */
static int relative_hint(const char *dir, char *out, size_t cap)
{
    char hint[HINT_SIZE], base[PATH_MAX], path[PATH_MAX + HINT_SIZE];
    const char *rel = hint;
    size_t i, off = sizeof HINT_MARKER - 1;
    for (i = 0; off + i < HINT_SIZE - 1 && (hint[i] = library_hint[off + i]) != '\0'; i++)
        ;
    hint[i] = '\0';
    if (!dir || !fits(base, sizeof base, "%s", dir))
        return 0;
    while (strncmp(rel, "../", 3) == 0) {
        char *slash = strrchr(base, '/');
        if (!slash)
            return 0;
        slash[slash == base ? 1 : 0] = '\0'; /* the parent of /x is / */
        rel += 3;
    }
    if (!fits(path, sizeof path, "%s%s%s", base, base[1] ? "/" : "", rel))
        return 0;
    return is_file(path) && absolute_path(path, out, cap);
}

/* Directory of this executable (realpath of /proc/self/exe) into dir; 0 or -1. */
static int self_dir(char *dir, size_t cap) __attribute__((noinline));
static int self_dir(char *dir, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", dir, cap - 1);
    char *slash;
    if (n <= 0 || (size_t)n >= cap - 1) /* cut: not a path we can trust */
        return -1;
    dir[n] = '\0';
    slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    slash[slash == dir ? 1 : 0] = '\0'; /* the program is in / */
    return 0;
}

/* The library of an editable install whose setuptools finder module or .pth file is `file`:
 * 1 and its path in out, else 0. The finder holds MAPPING = {'socksify': '/src/socksify'};
 * a "lenient" .pth holds the source directory on a line of its own. */
static int editable_library(const char *file, char *out, size_t cap) __attribute__((noinline));
static int editable_library(const char *file, char *out, size_t cap)
{
    static const char key[] = "'socksify': '";
    char text[16384], path[PATH_MAX + 64];
    const char *at, *end;
    ssize_t n;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    if ((at = strstr(text, key))) {
        at += sizeof key - 1;
        end = strchr(at, '\'');
        if (!end || end - at >= PATH_MAX)
            return 0;
        snprintf(path, sizeof path, "%.*s/" LIBRARY_NAME, (int)(end - at), at);
    } else if (text[0] == '/') {
        snprintf(path, sizeof path, "%.*s/socksify/" LIBRARY_NAME,
                 (int)strcspn(text, "\r\n") < PATH_MAX ? (int)strcspn(text, "\r\n") : 0, text);
    } else {
        return 0;
    }
    return is_file(path) && absolute_path(path, out, cap);
}

/* 1 when name (of length len) starts with the string literal prefix and ends with the
 * string literal suffix: lengths from sizeof, once per directory entry of site-packages. */
#define HAS_AFFIXES(name, len, prefix, suffix)                                               \
    ((len) >= sizeof prefix + sizeof suffix - 2 &&                                           \
     memcmp((name), prefix, sizeof prefix - 1) == 0 &&                                       \
     memcmp((name) + (len) - (sizeof suffix - 1), suffix, sizeof suffix - 1) == 0)

#define MAX_PYTHONS 16


/* The library's absolute path into out: 1 found, 0 not found (out: the path tried first,
 * for the message), -1 $SOCKSIFY_LIBRARY names a missing file.
 *
 * Under <dir>/../lib it reads each directory once (no glob(): that read lib/ and the
 * site directory again for every pattern, 13 getdents and 0.15 ms more in an editable
 * install): the python3* entries of lib/, then for site-packages and dist-packages in turn
 * socksify/libsocksify.so in each, then one scan of each site directory for setuptools'
 * editable finder module or .pth file. */
static int search_lib_dirs(const char *dir, char *out, size_t cap) __attribute__((noinline));

/* Steps 1-3 (the usual layouts: a few system calls), then search_lib_dirs(). Its buffers
 * and those of the rarer steps live in their own frames (noinline), so a run that finds
 * the library at once touches few stack pages (header comment: page faults). */
static int find_library(const char *dir, char *out, size_t cap)
{
    const char *override = getenv("SOCKSIFY_LIBRARY");
    if (override && *override) {
        if (!realpath(override, out) || !is_file(out)) {
            snprintf(out, cap, "%s", override);
            return -1;
        }
        return 1;
    }
    if (!dir)
        return 0;
    /* dir is a real path (/proc/self/exe: no "." or ".." part), so this one is too */
    if (join_path(out, cap, dir, dir[1] ? strlen(dir) : 0,
                  dir[1] ? LIBRARY_NAME : "/" LIBRARY_NAME) && is_file(out))
        return 1;
    if (hinted_library(dir, out, cap))
        return 1;
    return search_lib_dirs(dir, out, cap);
}

/* Steps 4 and 5 of the search (find_library). out: the path tried first when not found. */
static int search_lib_dirs(const char *dir, char *out, size_t cap)
{
    static const char *const sites[] = {"site-packages", "dist-packages"};
    char path[PATH_MAX + 64], pythons[MAX_PYTHONS][NAME_MAX + 1];
    size_t n_pythons = 0, i, k;
    struct dirent *entry;
    DIR *lib;
    snprintf(out, cap, "%s/" LIBRARY_NAME, dir);
    snprintf(path, sizeof path, "%s/../lib", dir);
    if (!(lib = opendir(path)))
        return 0;
    while ((entry = readdir(lib)) && n_pythons < MAX_PYTHONS)
        if (strncmp(entry->d_name, "python3", 7) == 0)
            snprintf(pythons[n_pythons++], sizeof *pythons, "%s", entry->d_name);
    closedir(lib);
    for (i = 0; i < 2; i++)
        for (k = 0; k < n_pythons; k++) {
            if (fits(path, sizeof path, "%s/../lib/%s/%s/socksify/" LIBRARY_NAME, dir,
                     pythons[k], sites[i]) && is_file(path) && absolute_path(path, out, cap))
                return 1;
        }
    for (i = 0; i < 2; i++)
        for (k = 0; k < n_pythons; k++) {
            DIR *site;
            int found = 0;
            if (!fits(path, sizeof path, "%s/../lib/%s/%s", dir, pythons[k], sites[i]) ||
                !(site = opendir(path)))
                continue;
            while (!found && (entry = readdir(site))) {
                size_t len;
                if (entry->d_name[0] != '_')
                    continue; /* most entries: no strlen, no compare */
                len = strlen(entry->d_name);
                if (!HAS_AFFIXES(entry->d_name, len, "__editable___socksify_", "finder.py") &&
                    !HAS_AFFIXES(entry->d_name, len, "__editable__.socksify-", ".pth"))
                    continue;
                found = fits(path, sizeof path, "%s/../lib/%s/%s/%s", dir, pythons[k],
                             sites[i], entry->d_name) &&
                        editable_library(path, out, cap);
            }
            closedir(site);
            if (found)
                return 1;
        }
    return 0;
}

/* Run the Python implementation with the same arguments (never returns). */
static void exec_python(const char *dir, char **argv)
{
    int argc = 0, i;
    char **args;
    char venv_python[PATH_MAX + 16];
    while (argv[argc])
        argc++;
    args = calloc((size_t)argc + 4, sizeof *args);
    if (!args)
        die(1, "out of memory");
    args[0] = "python3";
    args[1] = "-m";
    args[2] = "socksify.run";
    for (i = 1; i < argc; i++)
        args[i + 2] = argv[i];
    if (dir) {
        snprintf(venv_python, sizeof venv_python, "%s/python3", dir);
        if (access(venv_python, X_OK) == 0) {
            args[0] = venv_python; /* a venv's python finds its pyvenv.cfg from argv[0] */
            execv(venv_python, args);
            args[0] = "python3";
        }
    }
    execvp("python3", args);
    die(1, "the native shim " LIBRARY_NAME " was not found next to socksify-run and "
        "python3 cannot be run (%s): reinstall socksify (pip install .)", strerror(errno));
}

/* ---------------------------------------------------------------- coverable programs */

/* The path execvp would run for `program` under $PATH, into out: 1, or 0 not found. */
static int resolve_program(const char *program, const char *path_env, char *out, size_t cap)
{
    const char *p;
    if (!program || !*program)
        return 0;
    if (strchr(program, '/')) {
        join_path(out, cap, "", 0, program);
        return access(program, F_OK) == 0;
    }
    p = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    while (*p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        struct stat st;
        join_path(out, cap, p, n, program); /* an empty entry is the current directory */
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 1;
        p += n + (end ? 1 : 0);
    }
    return 0;
}

/* The first bytes of a program file: the ELF header and, in most binaries, the program
 * headers right after it (read once: no pread per program header). */
#define HEAD_SIZE 1024

/* len bytes at offset off of the file: from head (its first hlen bytes) when they are
 * there, else pread(). 0, or -1 when the file is shorter. */
static int read_at(int fd, const unsigned char *head, size_t hlen, void *buf, size_t len,
                   uint64_t off)
{
    if (off <= hlen && len <= hlen - off) {
        memcpy(buf, head + off, len);
        return 0;
    }
    return pread(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

/* ELF facts: *interp 1/0 (has PT_INTERP), *is_go; returns 0 for an ELF file, -1 not ELF.
 * hdr: the file's first hlen bytes. */
static int elf_facts(int fd, const unsigned char *hdr, size_t hlen, int *interp, int *is_go)
{
    static const char *const go_sections[] = {".note.go.buildid", ".go.buildinfo"};
    int is64, swap;
    uint64_t phoff, shoff;
    unsigned phentsize, phnum, shentsize, shnum, shstrndx, i;
    *interp = 0;
    *is_go = 0;
    if (hlen < 52 || memcmp(hdr, ELFMAG, SELFMAG) != 0)
        return -1;
    is64 = hdr[EI_CLASS] == ELFCLASS64;
    swap = hdr[EI_DATA] != ELFDATA2LSB; /* big-endian files: not on the machines we run */
    if (swap || (is64 && hlen < 64))
        return 0; /* treat as dynamic: the loader decides */
    if (is64) {
        Elf64_Ehdr e;
        memcpy(&e, hdr, sizeof e);
        phoff = e.e_phoff, phentsize = e.e_phentsize, phnum = e.e_phnum;
        shoff = e.e_shoff, shentsize = e.e_shentsize, shnum = e.e_shnum;
        shstrndx = e.e_shstrndx;
    } else {
        Elf32_Ehdr e;
        memcpy(&e, hdr, sizeof e);
        phoff = e.e_phoff, phentsize = e.e_phentsize, phnum = e.e_phnum;
        shoff = e.e_shoff, shentsize = e.e_shentsize, shnum = e.e_shnum;
        shstrndx = e.e_shstrndx;
    }
    for (i = 0; i < phnum; i++) {
        uint32_t type;
        if (read_at(fd, hdr, hlen, &type, sizeof type, phoff + (uint64_t)i * phentsize) < 0)
            break;
        if (type == PT_INTERP) {
            *interp = 1;
            break;
        }
    }
    /* Go: a section name only the Go toolchain writes (as _preload._elf_is_go). */
    if (shoff && shnum && shstrndx < shnum && shnum <= 4096) {
        uint64_t str_off, str_size;
        char small[1024], *names; /* curl's: 270 bytes, a Go program's: ~400 */
        if (is64) {
            Elf64_Shdr sh;
            if (read_at(fd, hdr, hlen, &sh, sizeof sh, shoff + (uint64_t)shstrndx * shentsize) < 0)
                return 0;
            str_off = sh.sh_offset, str_size = sh.sh_size;
        } else {
            Elf32_Shdr sh;
            if (read_at(fd, hdr, hlen, &sh, sizeof sh, shoff + (uint64_t)shstrndx * shentsize) < 0)
                return 0;
            str_off = sh.sh_offset, str_size = sh.sh_size;
        }
        if (str_size > (1u << 20))
            str_size = 1u << 20;
        /* the usual section name table fits on the stack: no malloc (musl's first
         * allocation costs system calls and page faults of its own) */
        names = str_size + 2 <= sizeof small ? memset(small, 0, str_size + 2)
                                             : calloc(1, str_size + 2);
        if (names) {
            ssize_t got = pread(fd, names + 1, str_size, (off_t)str_off);
            size_t k, j;
            for (j = 0; got > 0 && j < sizeof go_sections / sizeof *go_sections && !*is_go; j++) {
                size_t len = strlen(go_sections[j]);
                for (k = 0; k + len + 1 < (size_t)got + 2 && !*is_go; k++)
                    *is_go = names[k] == '\0' && memcmp(names + k + 1, go_sections[j], len) == 0 &&
                             names[k + 1 + len] == '\0';
            }
            if (names != small)
                free(names);
        }
    }
    return 0;
}

static void check_interpreter(const char *program, const char *path_env, int depth)
    __attribute__((noinline));

/* socksify/_preload.check_program(): exits 126/127 with its messages, else returns with
 * the path that $PATH gives for `program` in resolved (PATH_MAX bytes). */
static void check_program(const char *program, const char *path_env, int depth, char *resolved)
{
    unsigned char hdr[HEAD_SIZE + 1];
    struct stat st;
    ssize_t n;
    int fd, interp = 0, is_go = 0, elf;
    if (!resolve_program(program, path_env, resolved, PATH_MAX))
        die(EXIT_NOT_FOUND, "%s: command not found", program);
    /* no O_CLOEXEC: closed below, before any exec (musl adds an fcntl for O_CLOEXEC) */
    fd = open(resolved, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) < 0)
        die(EXIT_NOT_COVERABLE, "%s: %s", program, strerror(errno));
    n = read(fd, hdr, HEAD_SIZE);
    if (n < 0)
        die(EXIT_NOT_COVERABLE, "%s: %s", program, strerror(errno));
    hdr[n] = '\0';
    elf = elf_facts(fd, hdr, (size_t)n, &interp, &is_go);
    close(fd);
    if (st.st_mode & (S_ISUID | S_ISGID))
        die(EXIT_NOT_COVERABLE, "%s is set-uid/set-gid: the loader ignores LD_PRELOAD for it, "
            "so its traffic would not go through the proxy; refusing to run it", resolved);
    if (elf == 0 && !interp)
        die(EXIT_NOT_COVERABLE, "%s is statically linked: LD_PRELOAD cannot hook it, so its "
            "traffic would not go through the proxy; refusing to run it (use a dynamically "
            "linked build, or python -m socksify for Python programs)", resolved);
    if (elf == 0 && is_go)
        die(EXIT_NOT_COVERABLE, "%s is a Go program: Go makes its own system calls instead of "
            "calling libc's connect(), so LD_PRELOAD cannot route its traffic; refusing to run "
            "it (Go's net/http itself honours HTTPS_PROXY=socks5://HOST:PORT)", resolved);
    if (elf < 0 && n >= 2 && hdr[0] == '#' && hdr[1] == '!' && depth < 4) {
        /* the interpreter: the first word of the #! line (within the 64 bytes Python reads) */
        char *line = (char *)hdr + 2, *end;
        hdr[n > 64 ? 64 : n] = '\0';
        line[strcspn(line, "\n")] = '\0';
        line += strspn(line, " \t\r\f\v");
        end = line + strcspn(line, " \t\r\f\v");
        *end = '\0';
        if (*line)
            check_interpreter(line, path_env, depth + 1);
    }
}

/* check_program() for a script's interpreter (its own frame: the common ELF program does
 * not need the PATH_MAX buffer on the stack). */
static void check_interpreter(const char *program, const char *path_env, int depth)
{
    char interpreter[PATH_MAX];
    check_program(program, path_env, depth, interpreter);
}

/* os.execvp() of the Python implementation, whatever the C library: try each $PATH entry
 * in turn, keep the first error other than ENOENT/ENOTDIR. No /bin/sh retry of a file
 * without a #! line (glibc's execvp does that, musl's and Python's do not): it fails with
 * ENOEXEC in both implementations. `resolved` is the file check_program() found: tried
 * first, as the search would reach it after entries that are no executable file (each
 * failed execve costs ~2 us). Returns only on failure, errno set. */
static void exec_search(char **args, const char *path_env) __attribute__((noinline));

static void exec_program(char **args, const char *path_env, const char *resolved)
{
    if (strchr(args[0], '/')) {
        execv(args[0], args);
        return;
    }
    execv(resolved, args); /* on failure: the whole search, as os.execvp does it */
    exec_search(args, path_env);
}

static void exec_search(char **args, const char *path_env)
{
    char path[PATH_MAX];
    const char *p;
    int first_error = 0;
    p = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    for (;;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) /* an empty entry is the current directory */
            snprintf(path, sizeof path, "%s", args[0]);
        else
            snprintf(path, sizeof path, "%.*s/%s", (int)n, p, args[0]);
        execv(path, args);
        if (errno != ENOENT && errno != ENOTDIR && !first_error)
            first_error = errno;
        if (!end)
            break;
        p = end + 1;
    }
    if (first_error)
        errno = first_error;
}

/* ---------------------------------------------------------------- environment */

static int is_sanitizer_runtime(const char *entry, size_t len)
{
    static const char *const names[] = {"libasan", "libclang_rt.asan", "libubsan", "libtsan"};
    const char *base = entry;
    size_t i;
    for (i = 0; i < len; i++)
        if (entry[i] == '/')
            base = entry + i + 1;
    for (i = 0; i < sizeof names / sizeof *names; i++)
        if ((size_t)(entry + len - base) >= strlen(names[i]) &&
            strncmp(base, names[i], strlen(names[i])) == 0)
            return 1;
    return 0;
}

/* Append [s, s+n) at w: the end. (No printf on the way to the exec: musl's vsnprintf
 * frame alone reached two more stack pages, each a page fault on every run.) */
static char *append(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

/* "NAME=value" into out (room for both and the NUL). */
static void env_entry(char *out, const char *name_eq, const char *value)
{
    *append(append(out, name_eq, strlen(name_eq)), value, strlen(value)) = '\0';
}

/* The length of the LD_PRELOAD value build_preload() writes, NUL included (at most). */
static size_t preload_size(const char *existing, const char *library)
{
    return strlen(existing ? existing : "") + strlen(library) + 2;
}

/* LD_PRELOAD as socksify/_preload.build_env makes it: sanitizer runtimes, the library, the
 * other entries (without a duplicate of the library); ':'-separated, into out (at least
 * preload_size() bytes). */
static void build_preload(char *out, const char *existing, const char *library)
{
    size_t pass;
    char *w = out;
    for (pass = 0; pass < 3; pass++) {
        const char *p = existing ? existing : "";
        if (pass == 1) {
            if (w != out)
                *w++ = ':';
            w = append(w, library, strlen(library));
            continue;
        }
        while (*p) {
            size_t n;
            p += strspn(p, ": ");
            n = strcspn(p, ": ");
            if (n && (pass == 0) == is_sanitizer_runtime(p, n) &&
                !(pass == 2 && strlen(library) == n && strncmp(p, library, n) == 0)) {
                if (w != out)
                    *w++ = ':';
                w = append(w, p, n);
            }
            p += n;
        }
    }
    *w = '\0';
}

/* Put `entry` ("NAME=value") into env (n entries, room for one more), replacing the first
 * entry of the same NAME, as setenv() does. */
static void put_env(char **env, size_t *n, char *entry)
{
    size_t name_len = strcspn(entry, "=") + 1, i;
    for (i = 0; i < *n; i++)
        if (strncmp(env[i], entry, name_len) == 0) {
            env[i] = entry;
            return;
        }
    env[(*n)++] = entry;
    env[*n] = NULL;
}

static const char *const LEVELS[] = {"error", "warning", "info", "debug"};

/* ---------------------------------------------------------------- main */

/* The value of option `name` at argv[*i] ("--name VALUE" or "--name=VALUE"), else NULL. */
static const char *option_value(char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0')
        return NULL;
    if (!argv[*i + 1]) {
        usage(stderr);
        fprintf(stderr, "socksify-run: error: argument %s: expected one argument\n", name);
        exit(EXIT_USAGE);
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    const char *proxy = NULL, *no_proxy = NULL, *log = NULL, *value, *flag_proxy;
    int print_library = 0, i, found;
    char dir_buf[PATH_MAX], library[PATH_MAX], resolved[PATH_MAX];
    const char *dir = self_dir(dir_buf, sizeof dir_buf) == 0 ? dir_buf : NULL;
    static struct sfy_config cfg;
    (void)argc;

    for (i = 1; argv[i]; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            break; /* the command: everything from here is the program's */
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "--print-library") == 0)
            print_library = 1;
        else if ((value = option_value(argv, &i, "--proxy")))
            proxy = value;
        else if ((value = option_value(argv, &i, "--no-proxy")))
            no_proxy = value;
        else if ((value = option_value(argv, &i, "--log-level")))
            log = value;
        else {
            usage(stderr);
            fprintf(stderr, "socksify-run: error: unrecognized arguments: %s\n", arg);
            return EXIT_USAGE;
        }
    }

    found = find_library(dir, library, sizeof library);
    if (found < 0)
        die(1, "the native shim %s is missing: reinstall socksify with a C compiler "
            "(pip install .) to build it", library);
    if (found == 0)
        exec_python(dir, argv); /* unusual layout: the Python implementation finds it */
    if (print_library) {
        printf("%s\n", library);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (!argv[i])
        die(EXIT_USAGE, "no command given: socksify-run [options] [--] command [args...]");

    /* Flags win over the environment; the library's own parser validates (config.c). */
    flag_proxy = proxy;
    if (!proxy || !*proxy)
        proxy = getenv("SOCKSIFY_PROXY");
    if (!no_proxy)
        no_proxy = getenv("SOCKSIFY_NO_PROXY");
    if (log && !*log) /* as run.py: an empty --log-level is a bad level, not "unset" */
        die(EXIT_USAGE, "log level: bad log level '': use one of error, warning, info, debug");
    if (!log)
        log = getenv("SOCKSIFY_LOG");
    sfy_config_load(&cfg, proxy, getenv("all_proxy"), getenv("ALL_PROXY"), no_proxy, log,
                    getenv("SOCKSIFY_DNS_RANGE"));
    if (!cfg.valid) {
        /* the message names where the bad value came from: the flag when one was given */
        if (strncmp(cfg.error, "no proxy configured", 19) == 0)
            die(EXIT_USAGE, "no proxy configured: use --proxy URL or set SOCKSIFY_PROXY (like "
                "socks5h://127.0.0.1:1080); socksify never runs unproxied");
        if (proxy == flag_proxy && strncmp(cfg.error, "SOCKSIFY_PROXY: ", 16) == 0)
            die(EXIT_USAGE, "--proxy: %s", cfg.error + 16);
        die(EXIT_USAGE, "%s", cfg.error);
    }

    if (!proxy || !*proxy) { /* the socks URL of all_proxy / ALL_PROXY */
        const char *lc = getenv("all_proxy");
        proxy = lc && !strncasecmp(lc + strspn(lc, " \t"), "socks", 5) ? lc
                                                                        : getenv("ALL_PROXY");
    }
    if (!no_proxy)
        no_proxy = "";
    if (!proxy)
        proxy = "";
    {
        /* The program's environment, built on the stack (no setenv(): with musl its
         * allocations cost system calls and page faults on every run): environ's entries
         * with the four set as setenv() would set them. */
        const char *preload_now = getenv("LD_PRELOAD"), *path = getenv("PATH");
        size_t n_env = 0, n_vars;
        char **e;
        for (e = environ; *e; e++)
            n_env++;
        char *env[n_env + 5];
        char proxy_var[sizeof "SOCKSIFY_PROXY=" + strlen(proxy)];
        char no_proxy_var[sizeof "SOCKSIFY_NO_PROXY=" + strlen(no_proxy)];
        char log_var[sizeof "SOCKSIFY_LOG=" + strlen(LEVELS[cfg.log_level])];
        char preload_var[sizeof "LD_PRELOAD=" + preload_size(preload_now, library)];
        memcpy(env, environ, (n_env + 1) * sizeof *env);
        n_vars = n_env;
        env_entry(proxy_var, "SOCKSIFY_PROXY=", proxy);
        env_entry(no_proxy_var, "SOCKSIFY_NO_PROXY=", no_proxy);
        env_entry(log_var, "SOCKSIFY_LOG=", LEVELS[cfg.log_level]);
        memcpy(preload_var, "LD_PRELOAD=", sizeof "LD_PRELOAD=" - 1);
        build_preload(preload_var + sizeof "LD_PRELOAD=" - 1, preload_now, library);
        put_env(env, &n_vars, proxy_var);
        put_env(env, &n_vars, no_proxy_var);
        put_env(env, &n_vars, log_var);
        put_env(env, &n_vars, preload_var);
        check_program(argv[i], path, 0, resolved);
        environ = env; /* execv() passes environ */
        exec_program(argv + i, path, resolved);
        die(errno == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_COVERABLE, "%s: %s", argv[i],
            strerror(errno));
    }
}
