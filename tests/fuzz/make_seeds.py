"""Writes the fuzz targets' seed corpora (small valid files, plus a few near misses) into
tests/fuzz/corpus/<target>/. Standard library only: python3 tests/fuzz/make_seeds.py"""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx_images(n, rows, cols):
    return struct.pack(">IIII", 0x803, n, rows, cols) + bytes((i * 7) % 256 for i in range(n * rows * cols))


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def cifar(records):
    return b"".join(bytes([label]) + bytes((label * 31 + i) % 256 for i in range(3072)) for label in records)


def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def png(width, height, color_type, pixel):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    raw = b"".join(b"\x00" + bytes(pixel(x, y, c) for x in range(width) for c in range(channels)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    img = idx_images(2, 28, 28)
    write("idx", "images-2x28x28", img)
    write("idx", "images-2x28x28.gz", gzip.compress(img, mtime=0))
    write("idx", "images-1x32x32", idx_images(1, 32, 32))
    write("idx", "labels-5", idx_labels([0, 1, 9, 3, 4]))
    write("idx", "labels-5.gz", gzip.compress(idx_labels([0, 1, 9, 3, 4]), mtime=0))
    write("idx", "truncated", img[:100])

    write("cifar", "two-records.bin", cifar([3, 7]))
    write("cifar", "bad-label.bin", cifar([12]))
    write("cifar", "partial.bin", cifar([1])[:2000])

    f32 = struct.pack("<6f", *[0.5, -1.0, 2.0, 0.0, 1.5, -0.25])
    write("safetensors", "model.safetensors", safetensors(
        {"conv1.weight": ("F32", [2, 1, 3, 1], f32), "bn1.num_batches_tracked": ("I64", [], struct.pack("<q", 7)),
         "linear.bias": ("F64", [2], struct.pack("<2d", 0.1, 0.2))}, {"dataset": "fashion-mnist"}))
    write("safetensors", "empty.safetensors", safetensors({}))
    write("safetensors", "scalar.safetensors", safetensors({"x": ("F32", [], struct.pack("<f", 1.0))}))

    write("png", "gray-28.png", png(28, 28, 0, lambda x, y, c: (x * y) % 256))
    write("png", "rgb-32.png", png(32, 32, 2, lambda x, y, c: (x * 8 + c * 40 + y) % 256))
    write("png", "rgba-32.png", png(32, 32, 6, lambda x, y, c: 255 if c == 3 else (x + y) % 256))
    write("png", "gray-5x3.png", png(5, 3, 0, lambda x, y, c: 100))


if __name__ == "__main__":
    main()
