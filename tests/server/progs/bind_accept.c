/* Listen on port 0, print the address, accept one connection, echo a greeting.
 * Uses plain bind()/listen()/getsockname()/accept() so Dante's libdsocks can turn it
 * into SOCKS BIND. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    if (bind(s, (struct sockaddr *)&sin, sizeof sin) || listen(s, 1)) { perror("bind/listen"); return 1; }
    socklen_t len = sizeof sin;
    if (getsockname(s, (struct sockaddr *)&sin, &len)) { perror("getsockname"); return 1; }
    printf("ADDR %s %d\n", inet_ntoa(sin.sin_addr), ntohs(sin.sin_port));
    fflush(stdout);
    struct sockaddr_in peer;
    len = sizeof peer;
    int c = accept(s, (struct sockaddr *)&peer, &len);
    if (c < 0) { perror("accept"); return 1; }
    printf("PEER %s %d\n", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port));
    fflush(stdout);
    char buf[100];
    ssize_t n = recv(c, buf, sizeof buf - 1, 0);
    if (n < 0) { perror("recv"); return 1; }
    buf[n] = 0;
    printf("GOT %s\n", buf);
    const char *msg = "hi from the bind client";
    send(c, msg, strlen(msg), 0);
    close(c);
    return 0;
}
