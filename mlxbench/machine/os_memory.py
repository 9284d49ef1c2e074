"""What the operating system counts: a process's memory and the machine's, read where the OS keeps them.

MLX counts its own buffers (active, cache, peak); the OS counts everything the process holds, and
that is what makes a Mac swap or freeze. Two layers, each figure in bytes (pressure excepted):

- **process**: ``process_bytes`` (macOS: ``ri_phys_footprint``, Activity Monitor's "Memory";
  Linux: resident memory, VmRSS) and its high-water mark ``process_peak_bytes`` (macOS:
  ``ri_lifetime_max_phys_footprint``; Linux: VmHWM); ``rss_bytes``; on Linux also ``rss_anon_bytes``,
  ``rss_file_bytes`` and the process's swapped-out memory ``process_swap_bytes`` (VmSwap).
- **system**: ``total_bytes``, ``available_bytes``, ``swap_used_bytes``, ``wired_bytes`` (macOS,
  ``host_statistics64``) and ``pressure`` (macOS: the kernel's level 1 normal, 2 warn, 4 critical;
  Linux: PSI, the share of the last 10 s some task stalled on memory, in %, and ``pressure_full``:
  all tasks at once).

A figure this platform does not count is absent, and :func:`unavailable` says why. Reading never
raises: every OS call's status is checked and a failure leaves the figure out, with its reason.
Linux reads its /proc files through file descriptors kept open (one ``pread`` each). A sampler that
wakes every 10 ms calls :meth:`Reader.read_resident` (``/proc/<pid>/statm``: 5 µs) at every sample and
the full :meth:`Reader.read` (``status``, ``meminfo``, PSI: ~60 µs with the parsing) only now and then.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys

KIB = 1024
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
LINUX = sys.platform.startswith("linux")
MACOS = sys.platform == "darwin"

# /proc/<pid>/status keys (kB) → our names
_STATUS = {"VmRSS": "rss_bytes", "RssAnon": "rss_anon_bytes", "RssFile": "rss_file_bytes",
           "VmSwap": "process_swap_bytes", "VmHWM": "process_peak_bytes"}
_MEMINFO = ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree")
_PSI_RE = re.compile(rb"^(some|full) avg10=([\d.]+)", re.M)
PRESSURE_LEVELS = {1: "normal", 2: "warn", 4: "critical"}  # macOS kern.memorystatus_vm_pressure_level
PRESSURE_NAMES = ("warn", "critical")
# The guardrails' defaults: on a Mac, stop a case before swap and pressure freeze the machine; elsewhere
# (servers, CI) nothing is assumed about what the machine can afford.
DEFAULT_SWAP_LIMIT_MB = 1000 if MACOS else None  # 1 GB (MB = 10⁶ bytes: mlxbench.results.units)
DEFAULT_PRESSURE_LIMIT = "critical" if MACOS else None

_reasons: dict[str, str] = {}  # figure → why this platform (or this run) has none


def unavailable() -> dict[str, str]:
    """Each figure this platform could not give, with the reason in words."""
    _platform_reasons()
    return dict(_reasons)


def _platform_reasons() -> None:
    if LINUX:
        _reasons.setdefault("wired_bytes", "Linux does not count wired (GPU-pinned) memory: a macOS figure")
    elif MACOS:
        for key in ("rss_anon_bytes", "rss_file_bytes"):
            _reasons.setdefault(key, "macOS does not split resident memory into anonymous and file-backed")
        _reasons.setdefault("process_swap_bytes", "macOS does not count a process's swapped memory apart: "
                                                  "its footprint includes compressed and swapped pages")
        _reasons.setdefault("pressure_full", "macOS reports one pressure level, not PSI's some/full")
    else:
        _reasons.setdefault("process_bytes", f"no reader for {sys.platform}: only Linux and macOS are supported")


class Reader:
    """Reads the process and system layers; ``read()`` returns {figure: number} for what is available.

    One per process (or per watched pid): it keeps its /proc files open between reads.
    """

    def __init__(self, pid: int | None = None):
        self.pid = pid or os.getpid()
        self._fds: dict[str, int] = {}
        _platform_reasons()

    def read(self, system: bool = True) -> dict[str, float]:
        """The figures available now; ``system=False``: the process layer only (cheaper)."""
        if LINUX:
            return {**self._linux_process(), **(self._linux_system() if system else {})}
        if MACOS:
            try:
                return {**_mac_process(self.pid), **(_mac_system() if system else {})}
            except (AttributeError, OSError, ValueError) as err:  # a symbol this macOS lacks: say so, go on
                _reasons.setdefault("process_bytes", f"the macOS memory APIs could not be called: {err}")
                return {}
        return {}

    def read_resident(self) -> dict[str, float]:
        """The process's resident memory only, from the cheapest source: on Linux ``statm`` (its
        ``rss_file_bytes`` there also counts shared memory, which ``status`` keeps apart); elsewhere
        the process layer of :meth:`read`."""
        if not LINUX:
            return self.read(system=False)
        text = self._text(f"/proc/{self.pid}/statm")
        fields = text.split() if text else ()
        if len(fields) < 3 or not (fields[1].isdigit() and fields[2].isdigit()):
            return self._linux_process()
        resident, shared = int(fields[1]) * PAGE_BYTES, int(fields[2]) * PAGE_BYTES
        return {"rss_bytes": resident, "process_bytes": resident, "rss_file_bytes": shared,
                "rss_anon_bytes": resident - shared}

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    __del__ = close

    def _text(self, path: str) -> bytes | None:
        """The bytes of a /proc file, re-read through a descriptor kept open; None (and why) if unreadable."""
        try:
            fd = self._fds.get(path)
            if fd is None:
                fd = self._fds[path] = os.open(path, os.O_RDONLY)
            return os.pread(fd, 8192, 0)
        except OSError as err:
            self._fds.pop(path, None)
            _reasons.setdefault(path, f"{path}: {err.strerror or err}")
            return None

    def _linux_process(self) -> dict[str, float]:
        text = self._text(f"/proc/{self.pid}/status")
        if text is None:
            return {}
        out = {name: value for key, name in _STATUS.items() if (value := _kib_field(text, key)) is not None}
        if "rss_bytes" in out:
            out["process_bytes"] = out["rss_bytes"]
        return out

    def _linux_system(self) -> dict[str, float]:
        out: dict[str, float] = {}
        text = self._text("/proc/meminfo")
        if text is not None:
            found = {key: value for key in _MEMINFO if (value := _kib_field(text, key)) is not None}
            if "MemTotal" in found:
                out["total_bytes"] = found["MemTotal"]
            if "MemAvailable" in found:
                out["available_bytes"] = found["MemAvailable"]
            if "SwapTotal" in found and "SwapFree" in found:
                out["swap_used_bytes"] = found["SwapTotal"] - found["SwapFree"]
        out.update(self._linux_pressure())
        return out

    def _linux_pressure(self) -> dict[str, float]:
        text = self._text("/proc/pressure/memory")
        if text is None:
            _reasons.setdefault("pressure", "no PSI (/proc/pressure/memory): the kernel is older than 4.20 "
                                            "or was booted without psi")
            return {}
        return {"pressure" if kind == b"some" else "pressure_full": float(value)
                for kind, value in _PSI_RE.findall(text)}


def _kib_field(text: bytes, key: str) -> int | None:
    """``Key:   1234 kB`` of a /proc file, in bytes; None where absent. Found by ``bytes.find``, not
    by parsing every line: a sample every 10 ms must stay cheap."""
    name = key.encode() + b":"
    start = 0 if text.startswith(name) else text.find(b"\n" + name) + 1
    if not text.startswith(name, start):
        return None
    end = text.find(b"\n", start)
    words = text[start + len(name):end if end >= 0 else None].split()
    return int(words[0]) * KIB if words and words[0].isdigit() else None


# --- macOS: libproc, sysctl and the Mach host statistics, through ctypes -------------------------

RUSAGE_INFO_V4 = 4
HOST_VM_INFO64 = 4
KERN_SUCCESS = 0

_RUSAGE_V4_FIELDS = (
    "user_time", "system_time", "pkg_idle_wkups", "interrupt_wkups", "pageins", "wired_size",
    "resident_size", "phys_footprint", "proc_start_abstime", "proc_exit_abstime", "child_user_time",
    "child_system_time", "child_pkg_idle_wkups", "child_interrupt_wkups", "child_pageins",
    "child_elapsed_abstime", "diskio_bytesread", "diskio_byteswritten", "cpu_time_qos_default",
    "cpu_time_qos_maintenance", "cpu_time_qos_background", "cpu_time_qos_utility", "cpu_time_qos_legacy",
    "cpu_time_qos_user_initiated", "cpu_time_qos_user_interactive", "billed_system_time",
    "serviced_system_time", "logical_writes", "lifetime_max_phys_footprint", "instructions", "cycles",
    "billed_energy", "serviced_energy", "interval_max_phys_footprint", "runnable_time",
)


class RusageInfoV4(ctypes.Structure):
    """``struct rusage_info_v4`` of <sys/resource.h> (macOS 11+); fields keep their ``ri_`` names."""

    _fields_ = [("ri_uuid", ctypes.c_uint8 * 16)] + [(f"ri_{n}", ctypes.c_uint64) for n in _RUSAGE_V4_FIELDS]


class XswUsage(ctypes.Structure):
    """``struct xsw_usage`` of <sys/sysctl.h>: what ``vm.swapusage`` returns."""

    _fields_ = [("xsu_total", ctypes.c_uint64), ("xsu_avail", ctypes.c_uint64), ("xsu_used", ctypes.c_uint64),
                ("xsu_pagesize", ctypes.c_uint32), ("xsu_encrypted", ctypes.c_int32)]


class VmStatistics64(ctypes.Structure):
    """``struct vm_statistics64`` of <mach/vm_statistics.h>."""

    _pack_ = 8
    _fields_ = [("free_count", ctypes.c_uint32), ("active_count", ctypes.c_uint32),
                ("inactive_count", ctypes.c_uint32), ("wire_count", ctypes.c_uint32),
                *[(n, ctypes.c_uint64) for n in ("zero_fill_count", "reactivations", "pageins", "pageouts",
                                                 "faults", "cow_faults", "lookups", "hits", "purges")],
                ("purgeable_count", ctypes.c_uint32), ("speculative_count", ctypes.c_uint32),
                *[(n, ctypes.c_uint64) for n in ("decompressions", "compressions", "swapins", "swapouts")],
                *[(n, ctypes.c_uint32) for n in ("compressor_page_count", "throttled_count",
                                                 "external_page_count", "internal_page_count")],
                ("total_uncompressed_pages_in_compressor", ctypes.c_uint64)]


_libc = None
_host_port: tuple[int, int] | None = None  # (pid, port): a Mach port is per process


def _lib():
    """libSystem with errno, or None (and why) where it cannot be loaded."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("System") or "/usr/lib/libSystem.B.dylib", use_errno=True)
        except OSError as err:
            _reasons.setdefault("process_bytes", f"libSystem could not be loaded: {err}")
            _libc = False
    return _libc or None


def _failed(keys: tuple[str, ...], call: str, status: int | None = None) -> dict:
    err = ctypes.get_errno()
    why = f"{call} failed" + (f" with status {status}" if status not in (None, -1) else "") + \
        (f": {os.strerror(err)}" if err else "")
    for key in keys:
        _reasons.setdefault(key, why)
    return {}


def _mac_process(pid: int) -> dict[str, float]:
    libc = _lib()
    keys = ("process_bytes", "process_peak_bytes", "rss_bytes")
    if libc is None:
        return {}
    info = RusageInfoV4()
    ctypes.set_errno(0)
    status = libc.proc_pid_rusage(ctypes.c_int(pid), ctypes.c_int(RUSAGE_INFO_V4), ctypes.byref(info))
    if status != 0:
        return _failed(keys, f"proc_pid_rusage(pid {pid}, RUSAGE_INFO_V4)", status)
    return {"process_bytes": info.ri_phys_footprint, "process_peak_bytes": info.ri_lifetime_max_phys_footprint,
            "rss_bytes": info.ri_resident_size}


def _sysctl(name: str, ctype):
    """``sysctlbyname(name)`` into a ``ctype``, or None (and why) where it fails."""
    libc = _lib()
    if libc is None:
        return None
    value, size = ctype(), ctypes.c_size_t(ctypes.sizeof(ctype))
    ctypes.set_errno(0)
    status = libc.sysctlbyname(name.encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0))
    if status != 0 or size.value != ctypes.sizeof(ctype):
        _failed((name,), f"sysctlbyname({name!r})", status)
        return None
    return value


def _mac_system() -> dict[str, float]:
    out: dict[str, float] = {}
    total = _sysctl("hw.memsize", ctypes.c_uint64)
    if total is not None:
        out["total_bytes"] = total.value
        # The kernel's own share of memory available (what memory_pressure prints as "free percentage").
        level = _sysctl("kern.memorystatus_level", ctypes.c_uint32)
        if level is not None and level.value <= 100:
            out["available_bytes"] = total.value * level.value // 100
        else:
            _reasons.setdefault("available_bytes", "kern.memorystatus_level could not be read")
    swap = _sysctl("vm.swapusage", XswUsage)
    if swap is not None:
        out["swap_used_bytes"] = swap.xsu_used
    else:
        _reasons.setdefault("swap_used_bytes", "sysctl vm.swapusage failed")
    pressure = _sysctl("kern.memorystatus_vm_pressure_level", ctypes.c_int32)
    if pressure is not None:
        out["pressure"] = pressure.value
    else:
        _reasons.setdefault("pressure", "sysctl kern.memorystatus_vm_pressure_level failed")
    wired = _mac_wired_bytes()
    if wired is not None:
        out["wired_bytes"] = wired
    return out


def _mac_wired_bytes() -> int | None:
    """Wired memory: host_statistics64(HOST_VM_INFO64)'s wire_count × the kernel's page size."""
    global _host_port
    libc = _lib()
    if libc is None:
        return None
    libc.mach_host_self.restype = ctypes.c_uint32
    if _host_port is None or _host_port[0] != os.getpid():
        _host_port = (os.getpid(), libc.mach_host_self())  # one send right per process, kept
    port = ctypes.c_uint32(_host_port[1])
    stats = VmStatistics64()
    count = ctypes.c_uint32(ctypes.sizeof(VmStatistics64) // ctypes.sizeof(ctypes.c_int32))
    status = libc.host_statistics64(port, ctypes.c_int(HOST_VM_INFO64), ctypes.byref(stats), ctypes.byref(count))
    if status != KERN_SUCCESS:
        _failed(("wired_bytes",), "host_statistics64(HOST_VM_INFO64)", status)
        return None
    page = ctypes.c_size_t()  # vm_size_t
    status = libc.host_page_size(port, ctypes.byref(page))
    if status != KERN_SUCCESS or not page.value:
        _failed(("wired_bytes",), "host_page_size", status)
        return None
    return stats.wire_count * page.value


def pressure_words(pressure: float | None) -> str:
    """A pressure reading in words: macOS's level name, or Linux PSI as a percentage."""
    if pressure is None:
        return "unknown"
    if MACOS:
        return PRESSURE_LEVELS.get(int(pressure), f"level {pressure:g}")
    return f"{pressure:g}% of the last 10 s stalled on memory (PSI some)"
