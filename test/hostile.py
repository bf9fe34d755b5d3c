"""Hostile inputs the tests craft: a decompression bomb, a YAML alias bomb."""

import zlib


def png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of width x height zeros, compressed a hundredfold and more: a few hundred
    KB that a decoder would turn into width x height x 3 bytes. Streamed, so the test never holds
    it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
        )

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    packer, rows, idat = zlib.compressobj(9), b"\x00" * ((width + 1) * 100), []
    for _ in range(height // 100):
        idat.append(packer.compress(rows))
    idat.append(packer.compress(b"\x00" * ((width + 1) * (height % 100))) + packer.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(idat))
        + chunk(b"IEND", b"")
    )


# A billion laughs in 280 characters: nine levels of nine references, 9**9 strings when walked.
YAML_ALIAS_BOMB = (
    "[&a [x,x,x,x,x,x,x,x,x],"
    + ",".join(f"&{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi"))
    + "]"
)
