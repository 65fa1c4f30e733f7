"""Counts the imports of a test app across processes: SEGUE_IMPORT_COUNTER names a file, read
and rewritten under a file lock. The count is rewritten with one fixed-width write, so a worker
killed mid-import leaves the old count or the new one, never an empty file that would start the
count again."""

import fcntl
import os


def next_import():
    """This import's number, from 1."""
    fd = os.open(os.environ["SEGUE_IMPORT_COUNTER"], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        number = int(os.pread(fd, 32, 0) or b"0") + 1
        os.pwrite(fd, b"%020d" % number, 0)
        return number
    finally:
        os.close(fd)
