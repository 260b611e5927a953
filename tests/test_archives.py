"""archives: zip members are checked for size and compression ratio before anything is inflated."""

from __future__ import annotations

import io
import zipfile

from melodyrnn.archives import MAX_RATIO, check_members


def _zip(members: dict[str, tuple[bytes, int]]) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (data, method) in members.items():
            zf.writestr(name, data, compress_type=method)
    return zipfile.ZipFile(io.BytesIO(buf.getvalue()))


def test_ordinary_members_pass():
    archive = _zip({"a.bin": (bytes(range(256)) * 4096, zipfile.ZIP_DEFLATED), "b.json": (b"{}", zipfile.ZIP_STORED)})
    assert check_members(archive, 10 << 20, 20 << 20) is None


def test_a_bzip2_bomb_is_named_before_it_is_inflated():
    archive = _zip({"bomb.bin": (bytes(32 << 20), zipfile.ZIP_BZIP2)})
    info = archive.getinfo("bomb.bin")
    assert info.file_size > MAX_RATIO * info.compress_size
    assert check_members(archive, 1 << 30) == (
        f"member 'bomb.bin' would inflate {info.compress_size:,} bytes to {32 << 20:,} (more than {MAX_RATIO}:1, "
        "a decompression bomb)"
    )


def test_deflate_at_its_best_is_not_a_bomb():
    archive = _zip({"zeros.bin": (bytes(8 << 20), zipfile.ZIP_DEFLATED)})  # deflate peaks near 1,030:1
    assert check_members(archive, 1 << 30) is None


def test_member_and_total_caps():
    archive = _zip({"a.bin": (bytes(3000), zipfile.ZIP_STORED), "b.bin": (bytes(3000), zipfile.ZIP_STORED)})
    assert check_members(archive, 2000) == "member 'a.bin' claims 3,000 bytes (at most 2,000 allowed)"
    assert check_members(archive, 4000, 5000) == "its members claim 6,000 bytes in all (at most 5,000 allowed)"
