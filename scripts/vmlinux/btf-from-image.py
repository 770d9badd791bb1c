#!/usr/bin/env python3
"""Copies the kernel's BTF out of an uncompressed kernel image.

    btf-from-image.py IMAGE OUT

`make vmlinux-arm64` uses it on Debian's arm64 vmlinuz, which is a raw
Image (the kernel as loaded into memory, not an ELF file): bpftool reads BTF
from an ELF file's .BTF section or from a raw BTF file, and the Image has no
sections. Its .BTF data is there all the same, as the kernel reads it at
/sys/kernel/btf/vmlinux: a struct btf_header (include/uapi/linux/btf.h),
then the types, then the strings. This finds that header by its magic and
checks it describes a whole, well-formed blob; the largest such blob is the
kernel's (module and test blobs, if any, are far smaller).
"""

import struct
import sys

MAGIC = b"\x9f\xeb"  # 0xeB9F, little-endian
HEADER = struct.Struct("<HBBIIIII")  # magic version flags hdr_len type_off type_len str_off str_len


def candidates(image):
    start = image.find(MAGIC)
    while start >= 0:
        if start + HEADER.size <= len(image):
            _, version, flags, hdr_len, type_off, type_len, str_off, str_len = HEADER.unpack_from(image, start)
            strings = start + hdr_len + str_off
            end = strings + str_len
            if (
                version == 1
                and flags == 0
                and hdr_len == HEADER.size
                and type_off == 0
                and str_off == type_len
                and type_len > 0
                and str_len > 0
                and end <= len(image)
                and image[strings] == 0
                and image[end - 1] == 0
            ):
                yield image[start:end]
        start = image.find(MAGIC, start + 1)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        image = f.read()
    found = max(candidates(image), key=len, default=None)
    if found is None:
        print(f"btf-from-image: no BTF in {argv[1]} (a compressed or non-BTF kernel?)", file=sys.stderr)
        return 1
    with open(argv[2], "wb") as f:
        f.write(found)
    print(f"btf-from-image: {len(found)} bytes of BTF")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
