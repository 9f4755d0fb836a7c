"""System information, resource limits, randomness, prctl, and waiting on fds
(ppoll, pselect6)."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

@syscall("uname", "ptr")
def sys_uname(proc: GuestProcess, buf):
    u = os.uname()
    fields = (u.sysname, u.nodename, u.release, u.version, proc.machine, "(none)")
    data = b"".join(f.encode()[:64].ljust(65, b"\0") for f in fields)
    proc.check(buf, len(data), Access.WRITE)
    proc.write(buf, data)
    return 0


@syscall("sysinfo", "ptr")
def sys_sysinfo(proc: GuestProcess, info):
    return host.call("sysinfo", proc.check(info, 112, Access.WRITE))


@syscall("getrusage", "int ptr")
def sys_getrusage(proc: GuestProcess, who, usage):
    return host.call("getrusage", who, proc.check(usage, 144, Access.WRITE))


@syscall("getrlimit", "int ptr")
def sys_getrlimit(proc: GuestProcess, resource, rlim):
    return host.call("getrlimit", resource, proc.check(rlim, 16, Access.WRITE))


@syscall("setrlimit", "int ptr")
def sys_setrlimit(proc: GuestProcess, resource, rlim):
    return host.call("prlimit64", 0, resource, proc.check(rlim, 16), 0)


@syscall("prlimit64", "int int ptr ptr")
def sys_prlimit64(proc: GuestProcess, pid, resource, new, old):
    return host.call("prlimit64", pid, resource, proc.check(new, 16) if new else 0,
                     proc.check(old, 16, Access.WRITE) if old else 0)


@syscall("getrandom", "ptr uint hex")
def sys_getrandom(proc: GuestProcess, buf, count, flags):
    result = host.call("getrandom", proc.check(buf, count, Access.WRITE), count, flags)
    if result > 0:
        proc.wrote(buf, result)
    return result


PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 15, 16, 38, 39
PR_GET_CHILD_SUBREAPER, PR_SET_CHILD_SUBREAPER = 37, 36


@syscall("prctl", "int hex hex hex hex")
def sys_prctl(proc: GuestProcess, option, a2, a3, a4, a5):
    if option in (PR_SET_NAME, PR_GET_NAME):
        return host.call("prctl", option, proc.check(a2, 16, Access.WRITE if option == 16
                                                      else Access.READ), 0, 0, 0)
    if option in (PR_GET_PDEATHSIG, PR_GET_CHILD_SUBREAPER):
        return host.call("prctl", option, proc.check(a2, 4, Access.WRITE), 0, 0, 0)
    if option in (PR_SET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS,
                  PR_GET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER):
        return host.call("prctl", option, a2, a3, a4, a5)
    if proc.log.enabled("unimp") or proc.strace is not None:
        proc.log.write(f"{proc.pid} prctl: option {option} not supported, returning -EINVAL")
    return -errno.EINVAL


@syscall("ppoll", "ptr uint ptr ptr uint")
def sys_ppoll(proc: GuestProcess, fds, nfds, tsp, sigmask, sigsetsize):
    if nfds > 1 << 20:
        return -errno.EINVAL
    h_fds = proc.check(fds, 8 * nfds, Access.WRITE) if nfds else 0
    h_ts = proc.check(tsp, 16, Access.WRITE) if tsp else 0
    h_mask = proc.check(sigmask, 8) if sigmask else 0
    result = host.call("ppoll", h_fds, nfds, h_ts, h_mask, sigsetsize)
    if result >= 0 and nfds:
        proc.wrote(fds, 8 * nfds)
    return result


@syscall("pselect6", "int ptr ptr ptr ptr ptr")
def sys_pselect6(proc: GuestProcess, nfds, readfds, writefds, exceptfds, timeout, sigdata):
    if nfds < 0 or nfds > 1 << 16:
        return -errno.EINVAL
    size = (nfds + 63) // 64 * 8
    sets = [proc.check(p, size, Access.WRITE) if p else 0
            for p in (readfds, writefds, exceptfds)]
    h_ts = proc.check(timeout, 16, Access.WRITE) if timeout else 0
    keep = None
    h_sig = 0
    if sigdata:  # { const sigset_t *ss; size_t ss_len } holds a guest pointer
        ss, ss_len = struct.unpack("<QQ", proc.read(sigdata, 16))
        keep = (ctypes.c_uint64 * 2)(proc.check(ss, 8) if ss else 0, ss_len)
        h_sig = ctypes.addressof(keep)
    return host.call("pselect6", nfds, *sets, h_ts, h_sig)


# Capabilities: the header (u32 version, int pid) and data have the host's layout; the
# data array has 2 entries (12 bytes each) for versions 2 and 3, 1 for version 1.
_LINUX_CAPABILITY_VERSION_1 = 0x19980330


def _cap_data_size(proc: GuestProcess, header: int) -> int:
    version = proc.read_u32(header)
    return 12 if version == _LINUX_CAPABILITY_VERSION_1 else 24


@syscall("capget", "ptr ptr")
def sys_capget(proc: GuestProcess, header, data):
    size = _cap_data_size(proc, header)
    return host.call("capget", proc.check(header, 8, Access.WRITE),
                     proc.check(data, size, Access.WRITE) if data else 0)


@syscall("capset", "ptr ptr")
def sys_capset(proc: GuestProcess, header, data):
    size = _cap_data_size(proc, header)
    return host.call("capset", proc.check(header, 8), proc.check(data, size))


@syscall("syslog", "int ptr int")
def sys_syslog(proc: GuestProcess, kind, buf, length):
    if kind in (2, 3, 4):  # SYSLOG_ACTION_READ, _READ_ALL, _READ_CLEAR fill buf
        if length < 0 or length > 1 << 24:
            return -errno.EINVAL
        result = host.call("syslog", kind, proc.check(buf, length, Access.WRITE), length)
        if result > 0:
            proc.wrote(buf, result)
        return result
    return host.call("syslog", kind, 0, length)


@syscall("sethostname", "ptr uint")
def sys_sethostname(proc: GuestProcess, name, length):
    return host.call("sethostname", proc.check(name, length), length)


@syscall("setdomainname", "ptr uint")
def sys_setdomainname(proc: GuestProcess, name, length):
    return host.call("setdomainname", proc.check(name, length), length)


@syscall("acct", "path")
def sys_acct(proc: GuestProcess, filename):
    return host.call("acct", proc.read_path(filename) if filename else None)
