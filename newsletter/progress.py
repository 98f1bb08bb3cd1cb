"""What a worker has sent, recorded as it sends: one small local file per claimed group.

A line is written after each message or batch call the mail server accepted, into the file
as mapped in memory: a copy, where a write(2) per message was a system call on the hottest
path. The kernel keeps what was written if the worker is killed, so the rows of a dead
worker's group are settled exactly: those in its file were sent, the rest were not and go out
again; only what was in flight at the instant of the kill can arrive twice. A host that loses
power loses what the kernel had not yet written back: the mapping is flushed to the disk
(msync) at most FLUSH_SECONDS after the flush before, checked as each accepted message is
recorded (a monotonic clock read, no system call), and when a group ends in an error. While a worker
holds a group its file is locked (flock), and the lock dies with the process: a file whose
lock is free belongs to a worker that is gone.

Lines: "C <ids>" lists the group's deliveries, "P <n> <picks as JSON>" names a digest's
picks the first time the group sends it, "S <delivery id> <n> <message id>" records one sent
delivery, "E <error>" the exception that ended the group (what recovery notes if the rows
fail for good); a torn last line is ignored, as is the unwritten (zero) rest of the mapped file.
"""

import fcntl
import json
import mmap
import os
import time
from pathlib import Path

from django.conf import settings

from newsletter.sql import picks_json


def _folder():
    folder = Path(settings.DIGEST_PROGRESS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# A file's first size, doubled as needed. Its blocks are allocated before it is mapped: a
# full disk is then an error raised here, not a SIGBUS when a page is first written.
MAPPED = 1 << 20
# At most this many seconds of accepted messages are only in memory (see the module's doc).
FLUSH_SECONDS = 1.0
clock = time.monotonic  # module-level: tests control it


class Progress:
    """The progress file of one claim, created and locked before the claim is made. As a
    context manager: removed when the block ends normally (the outcomes are in the database),
    kept, unlocked, for recovery when it ends in an exception."""

    def __init__(self, claim):
        folder = _folder()
        self.path = folder / f"{claim}.log"
        # Locked under another name, then renamed: recovery never sees it unlocked.
        draft = folder / f".{claim}.draft"
        self.fd, self.map = os.open(draft, os.O_RDWR | os.O_CREAT, 0o600), None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            os.posix_fallocate(self.fd, 0, MAPPED)
            self.map = mmap.mmap(self.fd, MAPPED)
            os.rename(draft, self.path)
        except BaseException:  # a full disk, say: nothing is claimed yet, and nothing is left
            if self.map is not None:
                self.map.close()
            os.close(self.fd)
            draft.unlink(missing_ok=True)
            raise
        self.end, self.numbers, self.flushed = 0, {}, clock()
        self.flushes, self.flush_seconds = 0, 0.0  # what the benchmark reports of flushing

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None:  # kept for recovery: with why, and on the disk
            line = f"E {kind.__name__}: {error}".replace("\n", " ")[:400].encode(errors="replace") + b"\n"
            # Not if the file must grow for it: the error may be a full disk.
            if isinstance(error, Exception) and self.end + len(line) <= len(self.map):
                self._write(line)
            self.map.flush()
        self.map.close()
        if kind is None:
            self.path.unlink(missing_ok=True)
        else:
            os.ftruncate(self.fd, self.end)
        os.close(self.fd)

    def _write(self, data):
        end = self.end + len(data)
        if end > len(self.map):
            size = max(end, 2 * len(self.map))
            os.posix_fallocate(self.fd, 0, size)
            self.map.resize(size)
        self.map[self.end : end] = data
        self.end = end

    def claimed(self, delivery_ids):
        self._write(f"C {','.join(str(int(pk)) for pk in delivery_ids)}\n".encode())

    def sent(self, deliveries):
        """Record these (delivery id, picks, message id) as accepted by the mail server."""
        lines = []
        for delivery_id, picks, message_id in deliveries:
            number = self.numbers.get(picks)
            if number is None:
                number = self.numbers[picks] = len(self.numbers)
                lines.append(f"P {number} {picks_json(picks)}\n")
            lines.append(f"S {int(delivery_id)} {number} {message_id or '-'}\n")
        self._write("".join(lines).encode())
        now = clock()
        if now - self.flushed >= FLUSH_SECONDS:
            self.map.flush()
            self.flushed = clock()
            self.flushes += 1
            self.flush_seconds += self.flushed - now


def abandoned():
    """(claim, ids claimed, {delivery id sent: (picks, message id)}, the error that ended the
    group or "") for each progress file
    whose worker is gone. Each is locked while the caller settles it, and removed afterwards."""
    for path in sorted(_folder().glob("*.log")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # finished meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live worker's
            if os.fstat(fd).st_nlink == 0:
                continue  # its worker finished and removed it meanwhile
            yield (path.stem, *_read(_read_all(fd)))
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _read_all(fd):
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _read(data):
    claimed, picks, sent, error = [], {}, {}, ""
    for line in data.decode(errors="replace").split("\n")[:-1]:  # the last piece: empty, torn or unwritten
        if "\0" in line:  # torn too: a copy into the mapped file cut short leaves zeros, in any order
            continue
        kind, number, rest = (line.split(" ", 2) + ["", ""])[:3]
        try:
            if kind == "C":
                claimed += [int(pk) for pk in number.split(",") if pk]
            elif kind == "P":
                picks[number] = json.loads(rest)
            elif kind == "S":
                picks_number, message_id = rest.split(" ", 1)
                sent[int(number)] = (picks[picks_number], "" if message_id == "-" else message_id)
            elif kind == "E":
                error = line[2:]
        except (ValueError, KeyError):
            continue
    return claimed, sent, error
