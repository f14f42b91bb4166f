"""Media for the tests: files whose first bytes are those of their type, the rest random."""

from __future__ import annotations

import os

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PDF_HEAD = b"%PDF-1.7\n"
OGG_HEAD = b"OggS\x00\x02"


def jpeg(size: int = 40_000) -> bytes:
    return JPEG_HEAD + os.urandom(size - len(JPEG_HEAD))


def pdf(size: int = 20_000) -> bytes:
    return PDF_HEAD + os.urandom(size - len(PDF_HEAD))


def voice_note(size: int = 12_000) -> bytes:
    return OGG_HEAD + os.urandom(size - len(OGG_HEAD))
