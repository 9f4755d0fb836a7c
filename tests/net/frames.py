"""Ethernet/ARP/IPv4/UDP/DHCP frames built and parsed by hand, for the network tests."""

from __future__ import annotations

import socket
import struct

GUEST_MAC = bytes.fromhex("525400123456")
BROADCAST = b"\xff" * 6
ETH_ARP, ETH_IP = 0x0806, 0x0800


def ether(dst: bytes, src: bytes, kind: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", kind) + payload


def arp_request(sender_ip: str, target_ip: str, mac: bytes = GUEST_MAC) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, 1, mac,
                       socket.inet_aton(sender_ip), bytes(6), socket.inet_aton(target_ip))
    return ether(BROADCAST, mac, ETH_ARP, body)


def parse_arp(frame: bytes) -> tuple[int, bytes, str, str]:
    """(operation, sender MAC, sender IP, target IP)."""
    _, _, _, _, op, sha, spa, _, tpa = struct.unpack("!HHBBH6s4s6s4s", frame[14:42])
    return op, sha, socket.inet_ntoa(spa), socket.inet_ntoa(tpa)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(src_ip: str, dst_ip: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 packet with a UDP datagram (UDP checksum 0: none, allowed on IPv4)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def parse_udp(frame: bytes) -> tuple[str, str, int, int, bytes] | None:
    """(src IP, dst IP, src port, dst port, payload) of an Ethernet/IPv4/UDP frame."""
    if struct.unpack("!H", frame[12:14])[0] != ETH_IP or frame[23] != 17:
        return None
    ihl = (frame[14] & 0xF) * 4
    ip = frame[14:]
    sport, dport, length, _ = struct.unpack("!HHHH", ip[ihl:ihl + 8])
    return (socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), sport, dport,
            ip[ihl + 8:ihl + length])


DHCP_DISCOVER, DHCP_OFFER = 1, 2


def dhcp_discover(xid: int, mac: bytes = GUEST_MAC) -> bytes:
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                        bytes(4), bytes(4), bytes(4), bytes(4), mac.ljust(16, b"\0"),
                        bytes(64), bytes(128))
    options = b"\x63\x82\x53\x63" + bytes([53, 1, DHCP_DISCOVER, 255])
    packet = ipv4_udp("0.0.0.0", "255.255.255.255", 68, 67, bootp + options)
    return ether(BROADCAST, mac, ETH_IP, packet)


def parse_dhcp(payload: bytes) -> tuple[int, str, dict[int, bytes]]:
    """(xid, yiaddr, options) of a BOOTP/DHCP reply."""
    xid = struct.unpack("!I", payload[4:8])[0]
    yiaddr = socket.inet_ntoa(payload[16:20])
    options: dict[int, bytes] = {}
    rest = payload[240:]
    i = 0
    while i < len(rest) and rest[i] != 255:
        if rest[i] == 0:
            i += 1
            continue
        code, length = rest[i], rest[i + 1]
        options[code] = rest[i + 2:i + 2 + length]
        i += 2 + length
    return xid, yiaddr, options


TCP_FIN, TCP_SYN, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x08, 0x10


def ipv4_tcp(src_ip: str, dst_ip: str, sport: int, dport: int, seq: int, ack: int,
             flags: int, payload: bytes = b"") -> bytes:
    """An IPv4 packet with a TCP segment (no options, a 64 KiB window)."""
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, 0xFFFF, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    segment = segment[:16] + struct.pack("!H", _checksum(pseudo + segment)) + segment[18:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0, 64, 6, 0,
                         src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + segment


def parse_tcp(frame: bytes) -> tuple[str, str, int, int, int, int, int, bytes] | None:
    """(src IP, dst IP, src port, dst port, seq, ack, flags, payload) of an
    Ethernet/IPv4/TCP frame."""
    if struct.unpack("!H", frame[12:14])[0] != ETH_IP or frame[23] != 6:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:total]
    sport, dport, seq, ack, offset, flags = struct.unpack("!HHIIBB", tcp[:14])
    return (socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), sport, dport, seq,
            ack, flags, tcp[(offset >> 4) * 4:])
