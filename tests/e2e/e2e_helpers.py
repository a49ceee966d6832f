"""Helpers shared by the end-to-end tests: raw UDP/TCP exchanges and DNS message building.

Everything here talks only to loopback addresses and every socket operation has a timeout,
so no test can hang or leak traffic off the machine.
"""

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 3.0
# How long to wait before concluding that the server dropped a datagram on purpose.
NO_ANSWER_TIMEOUT = 0.5


# --- building queries -------------------------------------------------------------------------

def make_query(qname, rdtype="A", rdclass="IN", *, edns=None, payload=1232, options=None,
               rd=False, cd=False, ad=False, qid=None):
    """A dnspython query; edns=None means no OPT record, otherwise the EDNS version number."""
    flags = 0
    if rd:
        flags |= dns.flags.RD
    if cd:
        flags |= dns.flags.CD
    if ad:
        flags |= dns.flags.AD
    if isinstance(rdtype, int):
        rdtype = dns.rdatatype.RdataType.make(rdtype)
    if isinstance(rdclass, int):
        rdclass = dns.rdataclass.RdataClass.make(rdclass)
    q = dns.message.make_query(
        qname, rdtype, rdclass,
        use_edns=(edns if edns is not None else False),
        payload=payload, options=options, flags=flags, id=qid,
    )
    return q


def raw_header(qid, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def raw_question(qname, qtype, qclass=1):
    return dns.name.from_text(qname).to_wire() + struct.pack("!HH", qtype, qclass)


def parse_header(wire):
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", wire[:12])
    return {
        "id": qid, "flags": flags, "qr": bool(flags & 0x8000), "opcode": (flags >> 11) & 0xF,
        "aa": bool(flags & 0x0400), "tc": bool(flags & 0x0200), "rd": bool(flags & 0x0100),
        "ra": bool(flags & 0x0080), "z": bool(flags & 0x0040), "ad": bool(flags & 0x0020),
        "cd": bool(flags & 0x0010), "rcode": flags & 0xF,
        "qdcount": qd, "ancount": an, "nscount": ns, "arcount": ar,
    }


# --- transports ---------------------------------------------------------------------------------

def udp_exchange(port, wire, timeout=DEFAULT_TIMEOUT, host=HOST):
    """Send one datagram, return the reply bytes or None when nothing came within timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(wire)
        try:
            return s.recv(65535)
        except (socket.timeout, ConnectionRefusedError):
            # Refused: an ICMP port unreachable came back, i.e. nothing listens on UDP.
            return None


def tcp_connect(port, timeout=DEFAULT_TIMEOUT, host=HOST):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def recv_exact(sock, n):
    """Read exactly n bytes; returns fewer (possibly b'') only if the peer closed (FIN)."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return buf
        buf += chunk
    return buf


def tcp_send(sock, wire):
    sock.sendall(struct.pack("!H", len(wire)) + wire)


def tcp_recv(sock):
    """One length-prefixed message; raises EOFError when the peer closed cleanly."""
    hdr = recv_exact(sock, 2)
    if len(hdr) < 2:
        raise EOFError("connection closed by server while waiting for a length prefix")
    (n,) = struct.unpack("!H", hdr)
    body = recv_exact(sock, n)
    if len(body) < n:
        raise EOFError(f"connection closed after {len(body)} of {n} message bytes")
    return body


def tcp_exchange(port, wire, timeout=DEFAULT_TIMEOUT, host=HOST):
    with tcp_connect(port, timeout, host) as s:
        tcp_send(s, wire)
        return tcp_recv(s)


def wait_for_close(sock, timeout):
    """Wait until the server closes the connection.

    Returns ("fin", elapsed) for an orderly close (recv gives b''), ("rst", elapsed) for a
    reset, ("data", bytes) if the server sent something, ("open", elapsed) on timeout.
    """
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(65535)
    except socket.timeout:
        return "open", time.monotonic() - start
    except ConnectionResetError:
        return "rst", time.monotonic() - start
    if data == b"":
        return "fin", time.monotonic() - start
    return "data", data


def query(port, q, transport="udp", timeout=DEFAULT_TIMEOUT, host=HOST):
    """Send dnspython query q over transport, return the parsed response (asserting it came)."""
    wire = q.to_wire()
    if transport == "udp":
        reply = udp_exchange(port, wire, timeout, host)
        assert reply is not None, f"no UDP answer within {timeout}s to {q.question}"
    else:
        reply = tcp_exchange(port, wire, timeout, host)
    r = dns.message.from_wire(reply)
    assert r.id == q.id, f"answer id {r.id} != query id {q.id}"
    return r


# --- inspecting answers ------------------------------------------------------------------------

def rrsets(section, rdtype=None):
    return [rr for rr in section if rdtype is None or rr.rdtype == dns.rdatatype.RdataType.make(rdtype)]


def txt_strings(rrset):
    return sorted(b"".join(rd.strings).decode() for rd in rrset)


def edns_option(msg, code):
    for opt in msg.options:
        if int(opt.otype) == code:
            return opt
    return None


def option_data(opt):
    """The raw option payload regardless of which dnspython class decoded it."""
    return opt.to_wire() if hasattr(opt, "to_wire") else opt.data
