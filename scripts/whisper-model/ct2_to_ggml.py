#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (faster-whisper layout) to whisper.cpp's ggml file.

Usage: ct2_to_ggml.py CT2_MODEL_DIR OUTPUT.bin

CT2_MODEL_DIR holds `model.bin` (CTranslate2 binary, spec "WhisperSpec") and
`vocabulary.txt` (the byte-level BPE vocabulary, one token a line, in id order).
The output has the layout whisper.cpp's own converter (models/convert-pt-to-ggml.py)
writes for an f16 model:

    i32 magic 0x67676d6c ("ggml")
    i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
        n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype (1 = f16)
    i32 n_mel, i32 n_fft_bins, f32[n_mel * n_fft_bins] mel filters (row major)
    i32 n_tokens, then per token: i32 length, raw bytes
    per tensor: i32 n_dims, i32 name length, i32 type (0 f32, 1 f16),
        i32 dims[n_dims] (innermost first), name bytes, data (row major)

All integers and floats are little-endian. Only numpy is needed.
"""

import math
import os
import struct
import sys

import numpy as np

GGML_MAGIC = 0x67676D6C

# CTranslate2's DataType enum (include/ctranslate2/types.h), as saved in model.bin.
CT2_FLOAT32, CT2_INT8, CT2_INT16, CT2_INT32, CT2_FLOAT16, CT2_BFLOAT16 = range(6)
_CT2_NUMPY = {
    CT2_FLOAT32: np.dtype("<f4"),
    CT2_INT8: np.dtype("i1"),
    CT2_INT16: np.dtype("<i2"),
    CT2_INT32: np.dtype("<i4"),
    CT2_FLOAT16: np.dtype("<f2"),
    CT2_BFLOAT16: np.dtype("<u2"),  # raw bits, widened to f32 on use
}

# Whisper's front end: 16 kHz audio, 25 ms windows.
SAMPLE_RATE = 16000
N_FFT = 400


class ConversionError(Exception):
    pass


# --------------------------------------------------------------------------- CTranslate2


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ConversionError(
                "model.bin is truncated: wanted %d bytes at offset %d of %d"
                % (n, self.pos, len(self.data))
            )
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, self.data, self.take(size))

    def u8(self):
        return self.unpack("<B")[0]

    def u16(self):
        return self.unpack("<H")[0]

    def u32(self):
        return self.unpack("<I")[0]

    def string(self):
        # u16 length counting a trailing NUL, then the bytes and the NUL.
        length = self.u16()
        start = self.take(length)
        raw = bytes(self.data[start : start + length])
        return raw.split(b"\0", 1)[0].decode("utf-8")


def read_ct2_model(path):
    """Parse a CTranslate2 model.bin (binary versions 4 to 6).

    Returns (spec_name, spec_revision, variables) where variables maps each name,
    aliases included, to a numpy array (scalars are 0-d arrays).
    """
    with open(path, "rb") as f:
        data = f.read()
    r = _Reader(data)
    version = r.u32()
    if not 4 <= version <= 6:
        raise ConversionError(
            "unsupported CTranslate2 binary version %d (this converter reads 4 to 6)" % version
        )
    spec = r.string()
    revision = r.u32()
    variables = {}
    for _ in range(r.u32()):
        name = r.string()
        rank = r.u8()
        shape = tuple(r.unpack("<%dI" % rank)) if rank else ()
        type_id = r.u8()
        num_bytes = r.u32()
        dtype = _CT2_NUMPY.get(type_id)
        if dtype is None:
            raise ConversionError("variable %s has unknown data type id %d" % (name, type_id))
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dtype.itemsize != num_bytes:
            raise ConversionError(
                "variable %s: %d bytes do not hold %s of %s" % (name, num_bytes, shape, dtype)
            )
        start = r.take(num_bytes)
        array = np.frombuffer(data, dtype=dtype, count=count, offset=start).reshape(shape)
        if type_id == CT2_BFLOAT16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array
    # Aliases (binary version >= 3): names sharing another variable's storage, e.g.
    # decoder/projection/weight -> decoder/embeddings/weight.
    for _ in range(r.u32()):
        alias = r.string()
        target = r.string()
        if target in variables:
            variables[alias] = variables[target]
    if r.pos != len(data):
        raise ConversionError("model.bin has %d unexpected trailing bytes" % (len(data) - r.pos))
    return spec, revision, variables


# --------------------------------------------------------------------------- mel filters


def _hz_to_mel(hz):
    """Slaney's auditory mel scale (librosa's default, htk=False)."""
    hz = np.asanyarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_region = hz >= min_log_hz
    return np.where(
        log_region, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mels
    )


def _mel_to_hz(mels):
    mels = np.asanyarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    return np.where(log_region, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def mel_filters(n_mels, sr=SAMPLE_RATE, n_fft=N_FFT):
    """Triangular mel filter bank, [n_mels, 1 + n_fft // 2] float32.

    Same semantics as librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels) with its
    defaults (fmin 0, fmax sr/2, Slaney scale, Slaney area normalisation), which is
    how whisper's assets/mel_filters.npz was made.
    """
    n_bins = 1 + n_fft // 2
    fft_freqs = np.linspace(0.0, sr / 2.0, n_bins)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    widths = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, n_bins), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: each triangle has (approximately) unit area per Hz.
    enorm = 2.0 / (mel_pts[2 : n_mels + 2] - mel_pts[:n_mels])
    weights *= enorm[:, None]
    return weights


# --------------------------------------------------------------------------- vocabulary


def _byte_decoder():
    """Inverse of GPT-2's byte-to-unicode table used by byte-level BPE vocabularies.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes are mapped, in
    increasing order, to code points 256, 257, ...
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def read_vocabulary(path):
    """The regular BPE tokens of vocabulary.txt as bytes, in id order.

    Like whisper.cpp's converter, stop before <|endoftext|>: whisper.cpp names the
    special and timestamp tokens itself from hparams.n_vocab.
    """
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    try:
        n_regular = lines.index("<|endoftext|>")
    except ValueError:
        raise ConversionError("%s has no <|endoftext|> token" % path) from None
    decoder = _byte_decoder()
    tokens = []
    for i, token in enumerate(lines[:n_regular]):
        try:
            tokens.append(bytes(decoder[c] for c in token))
        except KeyError as e:
            raise ConversionError(
                "token %d %r is not byte-level BPE (character %r)" % (i, token, e.args[0])
            ) from None
    return tokens


# --------------------------------------------------------------------------- tensors


def _count_layers(variables, prefix):
    n = 0
    while ("%s/layer_%d/ffn/linear_0/weight" % (prefix, n)) in variables:
        n += 1
    return n


def _scalar(variables, name):
    return int(_require(variables, name).reshape(()))


def _require(variables, name):
    if name not in variables:
        raise ConversionError("model.bin lacks %s" % name)
    return variables[name]


def hparams_of(variables):
    enc_pos = _require(variables, "encoder/position_encodings/encodings")
    dec_pos = _require(variables, "decoder/position_encodings/encodings")
    emb = _require(variables, "decoder/embeddings/weight")
    conv1 = _require(variables, "encoder/conv1/weight")
    return {
        "n_vocab": emb.shape[0],
        "n_audio_ctx": enc_pos.shape[0],
        "n_audio_state": enc_pos.shape[1],
        "n_audio_head": _scalar(variables, "encoder/num_heads"),
        "n_audio_layer": _count_layers(variables, "encoder"),
        "n_text_ctx": dec_pos.shape[0],
        "n_text_state": emb.shape[1],
        "n_text_head": _scalar(variables, "decoder/num_heads"),
        "n_text_layer": _count_layers(variables, "decoder"),
        "n_mels": conv1.shape[1],
    }


def _split_rows(array, parts):
    rows = array.shape[0]
    if rows % parts:
        raise ConversionError("cannot split %d rows in %d" % (rows, parts))
    n = rows // parts
    return [array[i * n : (i + 1) * n] for i in range(parts)]


def ggml_tensors(variables, hp):
    """(ggml name, numpy array) in the order of whisper's own state dict."""
    v = variables

    def get(name):
        return _require(v, name)

    def norm(ct2, ggml):
        return [(ggml + ".weight", get(ct2 + "/gamma")), (ggml + ".bias", get(ct2 + "/beta"))]

    def linear(ct2, ggml):
        return [(ggml + ".weight", get(ct2 + "/weight")), (ggml + ".bias", get(ct2 + "/bias"))]

    def self_attention(ct2, ggml):
        # linear_0 is Q, K and V stacked by rows; Whisper's key projection has no bias
        # (CTranslate2 stores zeros there, and a key bias would cancel in the softmax).
        wq, wk, wv = _split_rows(get(ct2 + "/linear_0/weight"), 3)
        bq, _bk, bv = _split_rows(get(ct2 + "/linear_0/bias"), 3)
        return [
            (ggml + ".query.weight", wq),
            (ggml + ".query.bias", bq),
            (ggml + ".key.weight", wk),
            (ggml + ".value.weight", wv),
            (ggml + ".value.bias", bv),
        ] + linear(ct2 + "/linear_1", ggml + ".out")

    def cross_attention(ct2, ggml):
        # linear_0 is Q (on the decoder state), linear_1 is K and V stacked (on the
        # encoder output), linear_2 is the output projection.
        wk, wv = _split_rows(get(ct2 + "/linear_1/weight"), 2)
        _bk, bv = _split_rows(get(ct2 + "/linear_1/bias"), 2)
        return (
            linear(ct2 + "/linear_0", ggml + ".query")
            + [
                (ggml + ".key.weight", wk),
                (ggml + ".value.weight", wv),
                (ggml + ".value.bias", bv),
            ]
            + linear(ct2 + "/linear_2", ggml + ".out")
        )

    def mlp(ct2, ggml):
        return linear(ct2 + "/linear_0", ggml + ".mlp.0") + linear(
            ct2 + "/linear_1", ggml + ".mlp.2"
        )

    out = [("encoder.positional_embedding", get("encoder/position_encodings/encodings"))]
    for i in (1, 2):
        out += [
            ("encoder.conv%d.weight" % i, get("encoder/conv%d/weight" % i)),
            ("encoder.conv%d.bias" % i, get("encoder/conv%d/bias" % i)),
        ]
    for i in range(hp["n_audio_layer"]):
        ct2, ggml = "encoder/layer_%d" % i, "encoder.blocks.%d" % i
        out += self_attention(ct2 + "/self_attention", ggml + ".attn")
        out += norm(ct2 + "/self_attention/layer_norm", ggml + ".attn_ln")
        out += mlp(ct2 + "/ffn", ggml)
        out += norm(ct2 + "/ffn/layer_norm", ggml + ".mlp_ln")
    out += norm("encoder/layer_norm", "encoder.ln_post")

    out += [
        ("decoder.positional_embedding", get("decoder/position_encodings/encodings")),
        ("decoder.token_embedding.weight", get("decoder/embeddings/weight")),
    ]
    for i in range(hp["n_text_layer"]):
        ct2, ggml = "decoder/layer_%d" % i, "decoder.blocks.%d" % i
        out += self_attention(ct2 + "/self_attention", ggml + ".attn")
        out += norm(ct2 + "/self_attention/layer_norm", ggml + ".attn_ln")
        out += cross_attention(ct2 + "/attention", ggml + ".cross_attn")
        out += norm(ct2 + "/attention/layer_norm", ggml + ".cross_attn_ln")
        out += mlp(ct2 + "/ffn", ggml)
        out += norm(ct2 + "/ffn/layer_norm", ggml + ".mlp_ln")
    out += norm("decoder/layer_norm", "decoder.ln")
    return out


_F32_2D = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}


def _encode_tensor(name, array):
    """ggml tensor record: header then data, with whisper.cpp's type rules."""
    if array.dtype.kind != "f":
        raise ConversionError(
            "%s is %s; only float models are supported (not quantized ones)" % (name, array.dtype)
        )
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        array = array.reshape(array.shape[0], 1)
    n_dims = array.ndim
    if n_dims < 2 or name in _F32_2D:
        data, ftype = np.ascontiguousarray(array, dtype="<f4"), 0
    else:
        data, ftype = np.ascontiguousarray(array, dtype="<f2"), 1
    raw_name = name.encode("utf-8")
    header = struct.pack("<iii", n_dims, len(raw_name), ftype)
    header += struct.pack("<%di" % n_dims, *reversed(array.shape))
    return header + raw_name, data


def check_layout(variables, hp):
    """Fail early, with a clear message, on a model this converter does not know."""
    expect = {
        "decoder/activation": 3,  # GELU
        "decoder/pre_norm": 1,
        "decoder/scale_embeddings": 0,
        "decoder/start_from_zero_embedding": 0,
        "decoder/alibi": 0,
    }
    for name, want in expect.items():
        if name in variables and int(variables[name].reshape(())) != want:
            raise ConversionError(
                "%s is %s, whisper.cpp's Whisper needs %s"
                % (name, int(variables[name].reshape(())), want)
            )
    if "decoder/projection/bias" in variables:
        raise ConversionError("decoder/projection/bias exists; whisper.cpp has none")
    proj = variables.get("decoder/projection/weight")
    if proj is not None and proj is not variables["decoder/embeddings/weight"]:
        if not np.array_equal(proj, variables["decoder/embeddings/weight"]):
            raise ConversionError("output projection is not tied to the token embedding")
    if hp["n_audio_state"] != hp["n_text_state"]:
        raise ConversionError("encoder and decoder widths differ")
    if hp["n_audio_layer"] == 0 or hp["n_text_layer"] == 0:
        raise ConversionError("no encoder or decoder layers found")


def convert(model_dir, out_path):
    """Write the ggml file for the CTranslate2 model in model_dir; returns hparams."""
    spec, _revision, variables = read_ct2_model(os.path.join(model_dir, "model.bin"))
    if spec != "WhisperSpec":
        raise ConversionError("model.bin holds a %s, not a WhisperSpec" % spec)
    hp = hparams_of(variables)
    check_layout(variables, hp)
    tokens = read_vocabulary(os.path.join(model_dir, "vocabulary.txt"))
    filters = mel_filters(hp["n_mels"])
    tensors = ggml_tensors(variables, hp)

    tmp = out_path + ".part"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<i", GGML_MAGIC))
            f.write(
                struct.pack(
                    "<11i",
                    hp["n_vocab"],
                    hp["n_audio_ctx"],
                    hp["n_audio_state"],
                    hp["n_audio_head"],
                    hp["n_audio_layer"],
                    hp["n_text_ctx"],
                    hp["n_text_state"],
                    hp["n_text_head"],
                    hp["n_text_layer"],
                    hp["n_mels"],
                    1,  # ftype: f16 weights
                )
            )
            f.write(struct.pack("<ii", *filters.shape))
            f.write(np.ascontiguousarray(filters, dtype="<f4").tobytes())
            f.write(struct.pack("<i", len(tokens)))
            for token in tokens:
                f.write(struct.pack("<i", len(token)))
                f.write(token)
            for name, array in tensors:
                header, data = _encode_tensor(name, array)
                f.write(header)
                f.write(data.tobytes())
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return hp


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: %s CT2_MODEL_DIR OUTPUT.bin\n" % argv[0])
        return 2
    try:
        convert(argv[1], argv[2])
    except (ConversionError, OSError, UnicodeDecodeError) as e:
        sys.stderr.write("ct2_to_ggml: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
