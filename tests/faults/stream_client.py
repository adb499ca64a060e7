"""A small client run under each shim by test_transfer_faults.py (not a test module).

    stream_client.py halfclose HOST PORT SIZE   send SIZE bytes, shutdown(SHUT_WR), read to EOF
    stream_client.py reset HOST PORT            send a line, acknowledge the answer, then read
                                                until EOF or an error
    stream_client.py http URL                   download URL with urllib (prints "receiving"
                                                once the first part of the body is in)

Prints one line that says what the program saw; every wait is bounded (20 s).
"""

import hashlib
import socket
import sys
import urllib.request


def pattern(size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def halfclose(host: str, port: int, size: int) -> str:
    data = pattern(size)
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return f"echoed {len(received)} {'intact' if bytes(received) == data else 'CORRUPT'}"


def reset(host: str, port: int) -> str:
    received = b""
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(b"hi\n")
        try:
            while chunk := sock.recv(4096):
                received += chunk
                if received == b"hello\n":
                    sock.sendall(b"ack\n")  # the target resets only once we have it
        except ConnectionResetError:
            return f"{received!r} then reset"
        except TimeoutError:
            return f"{received!r} then HANG"
    return f"{received!r} then eof"


def http(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            body = response.read(1 << 16)
            print("receiving", flush=True)  # the test may now break the transfer
            body += response.read()
    except TimeoutError as exc:
        return f"HANG {exc!r}"
    except Exception as exc:  # noqa: BLE001 - reported, the test decides
        return f"error {type(exc).__name__}"
    return f"complete {len(body)}"


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "halfclose":
        print(halfclose(args[0], int(args[1]), int(args[2])))
    elif mode == "reset":
        print(reset(args[0], int(args[1])))
    else:
        print(http(args[0]))
