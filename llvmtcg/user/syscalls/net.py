"""Socket basics. Socket addresses, ``msghdr`` and ``iovec`` share x86-64's layouts;
pointers inside a ``msghdr`` are translated."""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.syscalls.files import host_iovec
from llvmtcg.user.syscalls.table import SyscallError, syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess


def _addrlen_out(proc: GuestProcess, addr, addrlen):
    """(host addr, host addrlen ptr) for calls that write back an address."""
    if not addr:
        return 0, proc.check(addrlen, 4, Access.WRITE) if addrlen else 0
    length = struct.unpack("<I", proc.read(addrlen, 4))[0]
    return proc.check(addr, length, Access.WRITE), proc.check(addrlen, 4, Access.WRITE)


@syscall("socket", "int int int")
def sys_socket(proc: GuestProcess, domain, kind, protocol):
    return host.call("socket", domain, kind, protocol)


@syscall("socketpair", "int int int ptr")
def sys_socketpair(proc: GuestProcess, domain, kind, protocol, sv):
    return host.call("socketpair", domain, kind, protocol, proc.check(sv, 8, Access.WRITE))


@syscall("bind", "fd ptr uint")
def sys_bind(proc: GuestProcess, fd, addr, addrlen):
    return host.call("bind", fd, proc.check(addr, addrlen), addrlen)


@syscall("connect", "fd ptr uint")
def sys_connect(proc: GuestProcess, fd, addr, addrlen):
    return host.call("connect", fd, proc.check(addr, addrlen), addrlen)


@syscall("listen", "fd int")
def sys_listen(proc: GuestProcess, fd, backlog):
    return host.call("listen", fd, backlog)


@syscall("accept", "fd ptr ptr")
def sys_accept(proc: GuestProcess, fd, addr, addrlen):
    return host.call("accept", fd, *_addrlen_out(proc, addr, addrlen))


@syscall("accept4", "fd ptr ptr oflags")
def sys_accept4(proc: GuestProcess, fd, addr, addrlen, flags):
    return host.call("accept4", fd, *_addrlen_out(proc, addr, addrlen), flags)


@syscall("getsockname", "fd ptr ptr")
def sys_getsockname(proc: GuestProcess, fd, addr, addrlen):
    return host.call("getsockname", fd, *_addrlen_out(proc, addr, addrlen))


@syscall("getpeername", "fd ptr ptr")
def sys_getpeername(proc: GuestProcess, fd, addr, addrlen):
    return host.call("getpeername", fd, *_addrlen_out(proc, addr, addrlen))


@syscall("sendto", "fd ptr uint hex ptr uint")
def sys_sendto(proc: GuestProcess, fd, buf, length, flags, addr, addrlen):
    return host.call("sendto", fd, proc.check(buf, length), length, flags,
                     proc.check(addr, addrlen) if addr else 0, addrlen)


@syscall("recvfrom", "fd ptr uint hex ptr ptr")
def sys_recvfrom(proc: GuestProcess, fd, buf, length, flags, addr, addrlen):
    h_addr, h_len = _addrlen_out(proc, addr, addrlen)
    result = host.call("recvfrom", fd, proc.check(buf, length, Access.WRITE), length, flags,
                       h_addr, h_len)
    if result > 0:
        proc.wrote(buf, result)
    return result


@syscall("setsockopt", "fd int int ptr uint")
def sys_setsockopt(proc: GuestProcess, fd, level, name, value, length):
    return host.call("setsockopt", fd, level, name, proc.check(value, length) if value else 0,
                     length)


@syscall("getsockopt", "fd int int ptr ptr")
def sys_getsockopt(proc: GuestProcess, fd, level, name, value, length_addr):
    length = struct.unpack("<I", proc.read(length_addr, 4))[0]
    return host.call("getsockopt", fd, level, name, proc.check(value, length, Access.WRITE),
                     proc.check(length_addr, 4, Access.WRITE))


@syscall("shutdown", "fd int")
def sys_shutdown(proc: GuestProcess, fd, how):
    return host.call("shutdown", fd, how)


def _host_msghdr(proc: GuestProcess, msg: int, access: Access):
    name, namelen, iov, iovlen, control, controllen, flags = struct.unpack(
        "<QI4xQQQQi4x", proc.read(msg, 56))
    if iovlen > 1024:
        raise SyscallError(errno.EMSGSIZE)
    iov_array, pairs = host_iovec(proc, iov, iovlen, access)
    header = struct.pack("<QI4xQQQQi4x", proc.check(name, namelen, access) if name else 0,
                         namelen, ctypes.addressof(iov_array), iovlen,
                         proc.check(control, controllen, access) if control else 0,
                         controllen, flags)
    buf = ctypes.create_string_buffer(header, 56)
    return buf, iov_array, pairs


@syscall("sendmsg", "fd ptr hex")
def sys_sendmsg(proc: GuestProcess, fd, msg, flags):
    buf, _keep, _ = _host_msghdr(proc, msg, Access.READ)
    return host.call("sendmsg", fd, ctypes.addressof(buf), flags)


@syscall("recvmsg", "fd ptr hex")
def sys_recvmsg(proc: GuestProcess, fd, msg, flags):
    buf, _keep, pairs = _host_msghdr(proc, msg, Access.WRITE)
    result = host.call("recvmsg", fd, ctypes.addressof(buf), flags)
    if result >= 0:
        # namelen, controllen and flags come back in the header.
        _, namelen, _, _, _, controllen, mflags = struct.unpack("<QI4xQQQQi4x", buf.raw[:56])
        proc.write(msg + 8, struct.pack("<I", namelen))
        proc.write(msg + 40, struct.pack("<Qi", controllen, mflags))
        for base, length in pairs:
            proc.wrote(base, length)
    return result


_MMSGHDR = 64  # struct mmsghdr: a msghdr (56) and the u32 msg_len, padded


def _mmsg(proc: GuestProcess, name: str, fd, msgvec, vlen, flags, timeout=None) -> int:
    vlen = min(vlen, 1024)  # (UIO_MAXIOV, as Linux clamps)
    if vlen == 0:
        return 0
    keep, headers = [], bytearray()
    for i in range(vlen):
        buf, iov_array, pairs = _host_msghdr(
            proc, msgvec + _MMSGHDR * i, Access.WRITE if name == "recvmmsg" else Access.READ)
        keep.append((buf, iov_array, pairs))
        headers += buf.raw[:56] + bytes(8)
    array = ctypes.create_string_buffer(bytes(headers), len(headers))
    args = [fd, ctypes.addressof(array), vlen, flags]
    if name == "recvmmsg":
        args.append(proc.check(timeout, 16, Access.WRITE) if timeout else 0)
    result = host.call(name, *args)
    raw = array.raw
    for i in range(max(result, 0)):
        entry = raw[_MMSGHDR * i:_MMSGHDR * (i + 1)]
        _, namelen, _, _, _, controllen, mflags = struct.unpack("<QI4xQQQQi4x", entry[:56])
        msg_len = struct.unpack_from("<I", entry, 56)[0]
        base = msgvec + _MMSGHDR * i
        if name == "recvmmsg":
            proc.write(base + 8, struct.pack("<I", namelen))
            proc.write(base + 40, struct.pack("<Qi", controllen, mflags))
            remaining = msg_len
            for start, length in keep[i][2]:
                if remaining <= 0:
                    break
                proc.wrote(start, min(length, remaining))
                remaining -= length
        proc.write(base + 56, struct.pack("<I", msg_len))
    return result


@syscall("sendmmsg", "fd ptr uint hex")
def sys_sendmmsg(proc: GuestProcess, fd, msgvec, vlen, flags):
    return _mmsg(proc, "sendmmsg", fd, msgvec, vlen, flags)


@syscall("recvmmsg", "fd ptr uint hex ptr")
def sys_recvmmsg(proc: GuestProcess, fd, msgvec, vlen, flags, timeout):
    return _mmsg(proc, "recvmmsg", fd, msgvec, vlen, flags, timeout)
