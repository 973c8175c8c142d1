"""Caffe's weight files read by protobuf's wire format: no Caffe, no generated caffe_pb2.

Only the fields a weight import needs, with the field numbers of Caffe's ``caffe.proto``:

- ``NetParameter``: ``layer`` = 100 (``LayerParameter``) and the legacy ``layers`` = 2 (``V1LayerParameter``);
- ``LayerParameter``: ``name`` = 1, ``type`` = 2 (a string such as "Convolution"), ``blobs`` = 7;
- ``V1LayerParameter``: ``name`` = 4, ``type`` = 5 (the ``LayerType`` enum, mapped to the current type
  strings by `V1_TYPES`), ``blobs`` = 6;
- ``BlobProto``: ``shape`` = 7 (``BlobShape``: ``dim`` = 1, packed int64), the legacy ``num``, ``channels``,
  ``height``, ``width`` = 1..4, ``data`` = 5 (packed float), ``double_data`` = 8 (packed double).

A ``.caffemodel`` is one ``NetParameter``; a ``.binaryproto`` mean (``ilsvrc_2012_mean.binaryproto``) is
one ``BlobProto``. The file is read once into memory and each blob's floats are one `numpy.frombuffer`
view of it (bvlc_alexnet.caffemodel is 233 MB). A file that ends inside a field, or is not protobuf at
all, is a `UserError` naming the file.
"""

import dataclasses

import numpy as np

from keras_alexnet.errors import UserError

# Wire types (protobuf encoding): varint, 64-bit, length-delimited, 32-bit.
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
NET_LAYER, NET_V1_LAYERS = 100, 2
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_NAME, V1_TYPE, V1_BLOBS = 4, 5, 6
BLOB_LEGACY_DIMS = (1, 2, 3, 4)  # num, channels, height, width
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1
# V1LayerParameter.LayerType values of the layers an image classifier has, as the current type strings.
V1_TYPES = {3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout", 8: "Flatten", 12: "ImageData",
            14: "InnerProduct", 15: "LRN", 17: "Pooling", 18: "ReLU", 19: "Sigmoid", 20: "Softmax",
            21: "SoftmaxWithLoss", 22: "Split", 23: "TanH", 1: "Accuracy", 29: "MemoryData"}


class _Truncated(Exception):
    pass


@dataclasses.dataclass
class CaffeLayer:
    """One layer of a net: its name, type string and parameter blobs (float32 arrays in Caffe's shapes)."""

    name: str
    type: str
    blobs: list


def _varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _Truncated()
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def fields(data, start=0, end=None):
    """(field number, wire type, value, value start) of each field of the message data[start:end]: a
    varint's value is the integer, a length-delimited field's value is its end offset (its bytes are
    data[value start:value]), a fixed field's value is its end offset too."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value, pos
            continue
        if wire == LENGTH:
            length, pos = _varint(data, pos)
            stop = pos + length
        elif wire in (FIXED64, FIXED32):
            stop = pos + (8 if wire == FIXED64 else 4)
        else:
            raise ValueError(f"wire type {wire} (groups are not used by caffe.proto)")
        if stop > end:
            raise _Truncated()
        yield number, wire, stop, pos
        pos = stop


def _packed_varints(data, start, stop):
    values, pos = [], start
    while pos < stop:
        value, pos = _varint(data, pos)
        values.append(value)
    return values


def _blob(data, start, end):
    """A BlobProto as a float32 array in its recorded shape (the legacy 4-d num/channels/height/width
    when it has no `shape`)."""
    shape, legacy = None, [0, 0, 0, 0]
    floats, doubles = [], []
    for number, wire, value, begin in fields(data, start, end):
        if number == BLOB_SHAPE and wire == LENGTH:
            shape = []
            for dim_number, dim_wire, dim_value, dim_begin in fields(data, begin, value):
                if dim_number == SHAPE_DIM:
                    shape += _packed_varints(data, dim_begin, dim_value) if dim_wire == LENGTH else [dim_value]
        elif number in BLOB_LEGACY_DIMS and wire == VARINT:
            legacy[number - 1] = value
        elif number == BLOB_DATA:  # packed (LENGTH) or, from old writers, one float per field (FIXED32)
            floats.append(np.frombuffer(data, "<f4", (value - begin) // 4, begin))
        elif number == BLOB_DOUBLE_DATA:
            doubles.append(np.frombuffer(data, "<f8", (value - begin) // 8, begin))
    values = np.concatenate(floats) if floats else (
        np.concatenate(doubles).astype(np.float32) if doubles else np.zeros(0, np.float32))
    if shape is None:
        shape = legacy if any(legacy) else [values.size]
    if int(np.prod(shape)) != values.size:
        raise ValueError(f"a blob of shape {tuple(shape)} holds {values.size} values")
    return values.reshape(shape)


def _layer(data, start, end, v1):
    name_field, type_field, blobs_field = (V1_NAME, V1_TYPE, V1_BLOBS) if v1 else (LAYER_NAME, LAYER_TYPE, LAYER_BLOBS)
    name, kind, blobs = "", "", []
    for number, wire, value, begin in fields(data, start, end):
        if number == name_field and wire == LENGTH:
            name = bytes(data[begin:value]).decode("utf-8", "replace")
        elif number == type_field:
            kind = V1_TYPES.get(value, f"V1 type {value}") if v1 and wire == VARINT else (
                bytes(data[begin:value]).decode("utf-8", "replace") if wire == LENGTH else kind)
        elif number == blobs_field and wire == LENGTH:
            blobs.append(_blob(data, begin, value))
    return CaffeLayer(name, kind, blobs)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror or error})") from None


def read_net(path: str) -> list:
    """The layers of a ``.caffemodel`` in file order (`CaffeLayer`s; current and V1 layers alike)."""
    data = _read(path)
    try:
        layers = [_layer(data, begin, value, v1=number == NET_V1_LAYERS)
                  for number, wire, value, begin in fields(data)
                  if number in (NET_LAYER, NET_V1_LAYERS) and wire == LENGTH]
    except _Truncated:
        raise UserError(f"{path}: truncated (the file ends inside a field; download it again)") from None
    except ValueError as error:
        raise UserError(f"{path}: not a Caffe model ({error})") from None
    if not layers:
        raise UserError(f"{path}: not a Caffe model (no layers)")
    return layers


def read_blob(path: str) -> np.ndarray:
    """A ``.binaryproto`` BlobProto (e.g. Caffe's ``ilsvrc_2012_mean.binaryproto``) as a float32 array."""
    data = _read(path)
    try:
        blob = _blob(data, 0, len(data))
    except _Truncated:
        raise UserError(f"{path}: truncated (the file ends inside a field)") from None
    except ValueError as error:
        raise UserError(f"{path}: not a Caffe blob ({error})") from None
    if blob.size == 0:
        raise UserError(f"{path}: not a Caffe blob (no data)")
    return blob
