"""Guards for the zip archives melodyrnn reads from users: bundles (and the Keras file inside one) and `.npz` caches.

`check_members` refuses an archive before anything is decompressed when a member claims more bytes than the
caller allows, or inflates implausibly: deflate cannot exceed about 1,030:1, so a higher ratio is a bzip2/lzma
bomb (3 KB that would become gigabytes). Depends on nothing but the standard library.
"""

from __future__ import annotations

import zipfile

__all__ = ["MAX_RATIO", "check_members"]

#: The highest compression ratio a member may claim: above deflate's ceiling, so only bombs are refused.
MAX_RATIO = 1100


def check_members(archive: zipfile.ZipFile, max_member_bytes: int, max_total_bytes: int | None = None) -> str | None:
    """What is wrong with `archive`'s member sizes, or None.

    Args:
        archive: an open zip file.
        max_member_bytes: the most uncompressed bytes one member may claim.
        max_total_bytes: the most all members together may claim; None: no total cap.

    Returns:
        A reason naming the member (for the caller's own error type), or None when every member is acceptable.
    """
    total = 0
    for info in archive.infolist():
        if info.file_size > max_member_bytes:
            return f"member {info.filename!r} claims {info.file_size:,} bytes (at most {max_member_bytes:,} allowed)"
        if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            return (
                f"member {info.filename!r} would inflate {info.compress_size:,} bytes to {info.file_size:,} "
                f"(more than {MAX_RATIO}:1, a decompression bomb)"
            )
        total += info.file_size
    if max_total_bytes is not None and total > max_total_bytes:
        return f"its members claim {total:,} bytes in all (at most {max_total_bytes:,} allowed)"
    return None
