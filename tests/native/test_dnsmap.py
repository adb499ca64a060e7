"""csrc/dnsmap.c: the remote-DNS placeholder map (design note at the top of that file):
allocation, reverse lookup, ranges, and consistency across threads and fork()."""

import ipaddress
import os
import socket
import threading

import pytest


@pytest.fixture
def dnsmap(native):
    ffi, lib = native
    maps = []

    def make(slots=1024):
        m = lib.sfy_dnsmap_create(slots)
        assert m != ffi.NULL
        maps.append(m)
        return m

    yield make
    for m in maps:
        lib.sfy_dnsmap_destroy(m)


def intern(native, m, name):
    ffi, lib = native
    slot = ffi.new("uint32_t *")
    rc = lib.sfy_dnsmap_intern(m, name.encode(), slot)
    return slot[0] if rc == 0 else -ffi.errno


def lookup(native, m, slot):
    ffi, lib = native
    out = ffi.new("char[]", 256)
    return ffi.string(out).decode() if lib.sfy_dnsmap_lookup(m, slot, out, 256) else None


def test_allocation_and_reverse_lookup(native, dnsmap):
    _, lib = native
    m = dnsmap()
    a, b = intern(native, m, "a.example"), intern(native, m, "b.example")
    assert (a, b) == (0, 1)
    assert intern(native, m, "a.example") == a  # same name, same placeholder
    assert lookup(native, m, a) == "a.example" and lookup(native, m, b) == "b.example"
    assert lookup(native, m, 2) is None and lookup(native, m, 5000) is None
    assert lib.sfy_dnsmap_used(m) == 2


def test_bad_names_and_a_full_map(native, dnsmap):
    m = dnsmap(4)
    assert intern(native, m, "") == -22  # EINVAL
    assert intern(native, m, "x" * 256) == -36  # ENAMETOOLONG
    assert [intern(native, m, f"h{i}") for i in range(4)] == [0, 1, 2, 3]
    assert intern(native, m, "one-too-many") == -28  # ENOSPC
    assert intern(native, m, "h2") == 2  # known names still resolve


def net(native, cidr):
    ffi, _ = native
    network = ipaddress.ip_network(cidr)
    n = ffi.new("struct sfy_net *")
    n.family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    packed = network.network_address.packed
    ffi.memmove(n.addr, packed, len(packed))
    n.prefix = network.prefixlen
    return n, network


@pytest.mark.parametrize("cidr, slot, address", [
    ("240.0.0.0/8", 0, "240.0.0.1"),
    ("240.0.0.0/8", 255, "240.0.1.0"),
    ("240.0.0.0/8", 65535, "240.1.0.0"),
    ("100::/64", 0, "100::1"),
    ("100::/64", 65535, "100::1:0"),
    ("10.7.0.0/24", 253, "10.7.0.254"),
])
def test_placeholder_addresses_round_trip(native, cidr, slot, address):
    ffi, lib = native
    n, network = net(native, cidr)
    ip = ffi.new("uint8_t[16]")
    lib.sfy_placeholder_ip(n, slot, ip)
    size = 4 if network.version == 4 else 16
    assert ipaddress.ip_address(bytes(ip)[:size]) == ipaddress.ip_address(address)
    out = ffi.new("uint32_t *")
    packed = ipaddress.ip_address(address).packed
    assert lib.sfy_placeholder_slot(n, n.family, packed, out) == 1 and out[0] == slot


def test_range_membership_and_capacity(native):
    ffi, lib = native
    n, _ = net(native, "240.0.0.0/8")
    out = ffi.new("uint32_t *")
    assert lib.sfy_placeholder_slot(n, socket.AF_INET, bytes([239, 255, 255, 255]), out) == 0
    assert lib.sfy_placeholder_slot(n, socket.AF_INET, bytes([240, 0, 0, 0]), out) == 1
    assert out[0] == 0xFFFFFFFF  # the network address names no slot: refused at connect
    assert lib.sfy_range_slots(n, 65536) == 65536
    small, _ = net(native, "10.7.0.0/24")
    assert lib.sfy_range_slots(small, 65536) == 254
    v6, _ = net(native, "100::/64")
    far = ipaddress.ip_address("100::1:0:0:5").packed
    assert lib.sfy_placeholder_slot(v6, socket.AF_INET6, far, out) == 1
    assert out[0] == 0xFFFFFFFF  # beyond 2^32 slots


def test_threads_agree_on_one_slot_per_name(native, dnsmap):
    m = dnsmap(4096)
    names = [f"host{i}.example" for i in range(200)]
    results = []

    def worker():
        results.append([intern(native, m, name) for name in names])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8
    for per_thread in results:
        for name, slot in zip(names, per_thread, strict=True):
            assert slot >= 0 and lookup(native, m, slot) == name


def test_fork_shares_the_map_both_ways(native, dnsmap):
    """A name the parent resolved maps back in the child, and one the child resolves after
    the fork maps back in the parent (MAP_SHARED, no lock held across fork)."""
    m = dnsmap()
    before = intern(native, m, "parent.example")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only os-level calls, then _exit
        try:
            ok = lookup(native, m, before) == "parent.example"
            slot = intern(native, m, "child.example")
            os.write(write_fd, f"{int(ok)} {slot}".encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        ok, slot = f.read().split()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert ok == "1"
    assert lookup(native, m, int(slot)) == "child.example"
    assert intern(native, m, "child.example") == int(slot)
