"""Unit tests of ct2_to_ggml on a tiny synthetic CTranslate2 Whisper model.

Run from this folder: python3 -m unittest test_ct2_to_ggml
(or from the repository root: python3 -m unittest discover -s scripts/whisper-model)

The test writes its own model.bin following CTranslate2's serialisation
(python/ctranslate2/specs/model_spec.py, binary version 6) and reads the ggml output
with its own parser, so neither side trusts the converter's code.
"""

import contextlib
import hashlib
import io
import os
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ct2_to_ggml  # noqa: E402

# SHA-256 of the float32 bytes of whisper's assets/mel_filters.npz arrays (openai-whisper
# 20250625), i.e. librosa.filters.mel(sr=16000, n_fft=400, n_mels=N).
MEL_80_SHA256 = "4f2701b1d287d74a0dc9871026e9519d98cb76426615f2539b0d151a0ae4ec2e"
MEL_128_SHA256 = "2a5f9822897750e047c85dea37cc268d3be0ecfd23c28a5f10da129d99d05afe"

# CTranslate2 type ids.
F32, I8, I16, I32, F16, BF16 = range(6)

STATE = 8  # model width
HEADS = 2
ENC_LAYERS = 2
DEC_LAYERS = 1
MELS = 80
AUDIO_CTX = 6
TEXT_CTX = 5
VOCAB_LINES = [
    "!",  # byte 0x21
    "Ġthe",  # " the"
    "Ċ",  # "\n"
    "âĤ¬",  # "€" as UTF-8 bytes e2 82 ac
    "Ā",  # byte 0x00
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|notimestamps|>",
    "<|0.00|>",
]
EXPECTED_TOKENS = [b"!", b" the", b"\n", b"\xe2\x82\xac", b"\x00"]
N_VOCAB = len(VOCAB_LINES)


def _ct2_string(s):
    raw = s.encode("utf-8")
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def write_ct2_model(path, variables, aliases=(), spec="WhisperSpec", version=6):
    """Serialise like CTranslate2's ModelSpec._serialize: variables sorted by name."""
    out = struct.pack("<I", version) + _ct2_string(spec) + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name in sorted(variables):
        type_id, array = variables[name]
        raw = np.ascontiguousarray(array).tobytes()
        out += _ct2_string(name) + struct.pack("<B", array.ndim)
        out += b"".join(struct.pack("<I", d) for d in array.shape)
        out += struct.pack("<BI", type_id, len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += _ct2_string(alias) + _ct2_string(target)
    with open(path, "wb") as f:
        f.write(out)


def synthetic_variables(seed=7):
    """A WhisperSpec-shaped variable set with tiny dimensions.

    Most tensors are float16 (like faster-whisper's float16 models); a few are float32
    or bfloat16 to check dtype handling. Returns {name: (type_id, array)}.
    """
    rng = np.random.default_rng(seed)
    v = {}

    def f16(*shape):
        return (F16, rng.standard_normal(shape).astype("<f2"))

    def f32(*shape):
        return (F32, rng.standard_normal(shape).astype("<f4"))

    def scalar(type_id, dtype, value):
        return (type_id, np.array(value, dtype=dtype))

    def linear(prefix, rows, cols, maker=f16):
        v[prefix + "/weight"] = maker(rows, cols)
        v[prefix + "/bias"] = maker(rows)

    def norm(prefix):
        v[prefix + "/gamma"] = f16(STATE)
        v[prefix + "/beta"] = f16(STATE)

    def fused_self_attention(prefix):
        linear(prefix + "/linear_0", 3 * STATE, STATE)
        v[prefix + "/linear_0/bias"][1][STATE : 2 * STATE] = 0  # no key bias
        linear(prefix + "/linear_1", STATE, STATE)
        norm(prefix + "/layer_norm")

    def ffn(prefix, maker=f16):
        linear(prefix + "/linear_0", 4 * STATE, STATE, maker)
        linear(prefix + "/linear_1", STATE, 4 * STATE, maker)
        norm(prefix + "/layer_norm")

    v["encoder/conv1/weight"] = f16(STATE, MELS, 3)
    v["encoder/conv1/bias"] = f16(STATE)
    v["encoder/conv2/weight"] = f16(STATE, STATE, 3)
    v["encoder/conv2/bias"] = f32(STATE)
    v["encoder/position_encodings/encodings"] = f16(AUDIO_CTX, STATE)
    v["encoder/num_heads"] = scalar(I16, "<i2", HEADS)
    for i in range(ENC_LAYERS):
        fused_self_attention("encoder/layer_%d/self_attention" % i)
        ffn("encoder/layer_%d/ffn" % i, f32 if i == 1 else f16)
    norm("encoder/layer_norm")

    v["decoder/embeddings/weight"] = f16(N_VOCAB, STATE)
    v["decoder/position_encodings/encodings"] = f32(TEXT_CTX, STATE)
    v["decoder/num_heads"] = scalar(I16, "<i2", HEADS)
    v["decoder/activation"] = scalar(I8, "i1", 3)
    v["decoder/pre_norm"] = scalar(I8, "i1", 1)
    v["decoder/alibi"] = scalar(I8, "i1", 0)
    v["decoder/scale_embeddings"] = scalar(I8, "i1", 0)
    v["decoder/start_from_zero_embedding"] = scalar(I8, "i1", 0)
    v["decoder/alignment_heads"] = scalar(I16, "<i2", 1)
    v["decoder/alignment_layer"] = scalar(I16, "<i2", -1)
    for i in range(DEC_LAYERS):
        p = "decoder/layer_%d" % i
        fused_self_attention(p + "/self_attention")
        linear(p + "/attention/linear_0", STATE, STATE)
        linear(p + "/attention/linear_1", 2 * STATE, STATE)
        v[p + "/attention/linear_1/bias"][1][:STATE] = 0
        linear(p + "/attention/linear_2", STATE, STATE)
        norm(p + "/attention/layer_norm")
        ffn(p + "/ffn")
    # One bfloat16 tensor: the final norm's gamma (bits of f32 values exactly
    # representable in bfloat16).
    gamma = np.array([1.0, -2.0, 0.5, 0.25, 3.0, -0.125, 8.0, 1.5], dtype="<f4")
    v["decoder/layer_norm/gamma"] = (BF16, (gamma.view("<u4") >> 16).astype("<u2"))
    v["decoder/layer_norm/beta"] = f16(STATE)
    return v


def read_ggml(path):
    """Minimal independent reader of whisper.cpp's ggml model layout."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def ints(n):
        nonlocal pos
        vals = struct.unpack_from("<%di" % n, data, pos)
        pos += 4 * n
        return vals

    magic = ints(1)[0]
    hparams = ints(11)
    n_mel, n_bins = ints(2)
    filters = np.frombuffer(data, "<f4", n_mel * n_bins, pos).reshape(n_mel, n_bins)
    pos += 4 * n_mel * n_bins
    tokens = []
    for _ in range(ints(1)[0]):
        (length,) = ints(1)
        tokens.append(data[pos : pos + length])
        pos += length
    tensors = []
    while pos < len(data):
        n_dims, name_len, ftype = ints(3)
        dims = ints(n_dims)
        name = data[pos : pos + name_len].decode()
        pos += name_len
        size = (4 if ftype == 0 else 2) * int(np.prod(dims))
        tensors.append((name, n_dims, ftype, dims, data[pos : pos + size]))
        pos += size
    assert pos == len(data), "trailing bytes"
    return magic, hparams, filters, tokens, tensors


def _f16(array):
    return np.ascontiguousarray(array, dtype="<f2").tobytes()


def _f32(array):
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


class ConverterTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.vars = synthetic_variables()
        write_ct2_model(
            os.path.join(self.dir, "model.bin"),
            self.vars,
            aliases=[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
        with open(os.path.join(self.dir, "vocabulary.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(VOCAB_LINES) + "\n")
        self.out = os.path.join(self.dir, "ggml.bin")

    def tearDown(self):
        self.tmp.cleanup()

    def src(self, name):
        return self.vars[name][1]

    def convert(self):
        ct2_to_ggml.convert(self.dir, self.out)
        return read_ggml(self.out)

    def test_header_hparams_and_first_bytes(self):
        magic, hparams, _, _, _ = self.convert()
        self.assertEqual(magic, 0x67676D6C)
        self.assertEqual(
            hparams,
            (N_VOCAB, AUDIO_CTX, STATE, HEADS, ENC_LAYERS, TEXT_CTX, STATE, HEADS, DEC_LAYERS, MELS, 1),
        )
        with open(self.out, "rb") as f:
            head = f.read(56)
        expected = struct.pack(
            "<14i", 0x67676D6C, N_VOCAB, AUDIO_CTX, STATE, HEADS, ENC_LAYERS,
            TEXT_CTX, STATE, HEADS, DEC_LAYERS, MELS, 1, 80, 201,
        )
        self.assertEqual(head, expected)
        self.assertEqual(head[:4], b"lmgg")

    def test_mel_filters_match_whisper_assets(self):
        _, _, filters, _, _ = self.convert()
        self.assertEqual(filters.shape, (80, 201))
        self.assertEqual(hashlib.sha256(filters.tobytes()).hexdigest(), MEL_80_SHA256)
        mel128 = ct2_to_ggml.mel_filters(128)
        self.assertEqual(mel128.dtype, np.float32)
        self.assertEqual(
            hashlib.sha256(np.ascontiguousarray(mel128, "<f4").tobytes()).hexdigest(),
            MEL_128_SHA256,
        )

    def test_vocabulary_is_bytes_before_endoftext(self):
        _, _, _, tokens, _ = self.convert()
        self.assertEqual(tokens, EXPECTED_TOKENS)

    def test_tensor_names_order_types_and_dims(self):
        _, _, _, _, tensors = self.convert()
        names = [t[0] for t in tensors]
        block = [
            "attn.query.weight", "attn.query.bias", "attn.key.weight",
            "attn.value.weight", "attn.value.bias", "attn.out.weight", "attn.out.bias",
            "attn_ln.weight", "attn_ln.bias",
        ]
        mlp = ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
               "mlp_ln.weight", "mlp_ln.bias"]
        cross = ["cross_attn." + n[len("attn."):] if n.startswith("attn.") else
                 "cross_attn_ln." + n[len("attn_ln."):] for n in block]
        expected = ["encoder.positional_embedding", "encoder.conv1.weight",
                    "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias"]
        for i in range(ENC_LAYERS):
            expected += ["encoder.blocks.%d.%s" % (i, n) for n in block + mlp]
        expected += ["encoder.ln_post.weight", "encoder.ln_post.bias",
                     "decoder.positional_embedding", "decoder.token_embedding.weight"]
        for i in range(DEC_LAYERS):
            expected += ["decoder.blocks.%d.%s" % (i, n) for n in block + cross + mlp]
        expected += ["decoder.ln.weight", "decoder.ln.bias"]
        self.assertEqual(names, expected)

        by_name = {t[0]: t[1:4] for t in tensors}
        # (n_dims, ftype, dims innermost first)
        self.assertEqual(by_name["encoder.conv1.weight"], (3, 1, (3, MELS, STATE)))
        self.assertEqual(by_name["encoder.conv1.bias"], (2, 0, (1, STATE)))
        self.assertEqual(by_name["encoder.conv2.bias"], (2, 0, (1, STATE)))
        self.assertEqual(by_name["encoder.positional_embedding"], (2, 0, (STATE, AUDIO_CTX)))
        self.assertEqual(by_name["decoder.positional_embedding"], (2, 0, (STATE, TEXT_CTX)))
        self.assertEqual(by_name["decoder.token_embedding.weight"], (2, 1, (STATE, N_VOCAB)))
        self.assertEqual(by_name["encoder.blocks.0.attn.key.weight"], (2, 1, (STATE, STATE)))
        self.assertEqual(by_name["encoder.blocks.0.mlp.0.weight"], (2, 1, (STATE, 4 * STATE)))
        self.assertEqual(by_name["encoder.blocks.0.mlp.2.weight"], (2, 1, (4 * STATE, STATE)))
        self.assertEqual(by_name["decoder.ln.weight"], (1, 0, (STATE,)))
        for name, (n_dims, ftype, _dims) in by_name.items():
            self.assertEqual(ftype, 0 if n_dims < 2 or name in (
                "encoder.conv1.bias", "encoder.conv2.bias",
                "encoder.positional_embedding", "decoder.positional_embedding") else 1, name)
        self.assertNotIn("encoder.blocks.0.attn.key.bias", by_name)

    def test_tensor_data_bytes(self):
        _, _, _, _, tensors = self.convert()
        data = {t[0]: t[4] for t in tensors}
        s = STATE
        qkv_w = self.src("encoder/layer_0/self_attention/linear_0/weight")
        qkv_b = self.src("encoder/layer_0/self_attention/linear_0/bias")
        e = "encoder.blocks.0.attn."
        self.assertEqual(data[e + "query.weight"], _f16(qkv_w[:s]))
        self.assertEqual(data[e + "key.weight"], _f16(qkv_w[s : 2 * s]))
        self.assertEqual(data[e + "value.weight"], _f16(qkv_w[2 * s :]))
        self.assertEqual(data[e + "query.bias"], _f32(qkv_b[:s]))
        self.assertEqual(data[e + "value.bias"], _f32(qkv_b[2 * s :]))
        self.assertEqual(
            data[e + "out.weight"], _f16(self.src("encoder/layer_0/self_attention/linear_1/weight"))
        )

        kv_w = self.src("decoder/layer_0/attention/linear_1/weight")
        kv_b = self.src("decoder/layer_0/attention/linear_1/bias")
        d = "decoder.blocks.0.cross_attn."
        self.assertEqual(data[d + "query.weight"], _f16(self.src("decoder/layer_0/attention/linear_0/weight")))
        self.assertEqual(data[d + "key.weight"], _f16(kv_w[:s]))
        self.assertEqual(data[d + "value.weight"], _f16(kv_w[s:]))
        self.assertEqual(data[d + "value.bias"], _f32(kv_b[s:]))
        self.assertEqual(data[d + "out.bias"], _f32(self.src("decoder/layer_0/attention/linear_2/bias")))
        self.assertEqual(
            data["decoder.blocks.0.cross_attn_ln.weight"],
            _f32(self.src("decoder/layer_0/attention/layer_norm/gamma")),
        )

        # Renames, reshapes and dtype changes.
        self.assertEqual(data["encoder.conv1.weight"], _f16(self.src("encoder/conv1/weight")))
        self.assertEqual(data["encoder.conv1.bias"], _f32(self.src("encoder/conv1/bias")))
        self.assertEqual(data["encoder.conv2.bias"], _f32(self.src("encoder/conv2/bias")))
        self.assertEqual(
            data["encoder.positional_embedding"],
            _f32(self.src("encoder/position_encodings/encodings")),
        )
        self.assertEqual(
            data["decoder.positional_embedding"],
            _f32(self.src("decoder/position_encodings/encodings")),
        )
        # float32 source weights become float16
        self.assertEqual(
            data["encoder.blocks.1.mlp.2.weight"], _f16(self.src("encoder/layer_1/ffn/linear_1/weight"))
        )
        self.assertEqual(
            data["encoder.blocks.1.mlp.0.bias"], _f32(self.src("encoder/layer_1/ffn/linear_0/bias"))
        )
        self.assertEqual(
            data["encoder.blocks.0.mlp_ln.bias"], _f32(self.src("encoder/layer_0/ffn/layer_norm/beta"))
        )
        self.assertEqual(data["encoder.ln_post.weight"], _f32(self.src("encoder/layer_norm/gamma")))
        self.assertEqual(
            data["decoder.token_embedding.weight"], _f16(self.src("decoder/embeddings/weight"))
        )
        # bfloat16 source is widened exactly
        self.assertEqual(
            data["decoder.ln.weight"], _f32([1.0, -2.0, 0.5, 0.25, 3.0, -0.125, 8.0, 1.5])
        )

    def test_output_is_deterministic(self):
        self.convert()
        with open(self.out, "rb") as f:
            first = hashlib.sha256(f.read()).hexdigest()
        self.convert()
        with open(self.out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), first)
        self.assertFalse(os.path.exists(self.out + ".part"))

    def test_rejects_other_specs_quantized_and_truncated_models(self):
        path = os.path.join(self.dir, "model.bin")
        write_ct2_model(path, self.vars, spec="TransformerSpec")
        with self.assertRaisesRegex(ct2_to_ggml.ConversionError, "not a WhisperSpec"):
            ct2_to_ggml.convert(self.dir, self.out)

        quantized = dict(self.vars)
        quantized["encoder/conv2/weight"] = (I8, np.ones((STATE, STATE, 3), dtype="i1"))
        write_ct2_model(path, quantized)
        with self.assertRaisesRegex(ct2_to_ggml.ConversionError, "quantized"):
            ct2_to_ggml.convert(self.dir, self.out)
        self.assertFalse(os.path.exists(self.out + ".part"))

        write_ct2_model(path, self.vars)
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "wb") as f:
            f.write(raw[: len(raw) // 2])
        with self.assertRaisesRegex(ct2_to_ggml.ConversionError, "truncated"):
            ct2_to_ggml.convert(self.dir, self.out)
        self.assertFalse(os.path.exists(self.out))

        write_ct2_model(path, self.vars, version=2)
        with self.assertRaisesRegex(ct2_to_ggml.ConversionError, "binary version 2"):
            ct2_to_ggml.convert(self.dir, self.out)

    def test_cli_exit_codes(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(ct2_to_ggml.main(["ct2_to_ggml.py", self.dir, self.out]), 0)
            self.assertEqual(err.getvalue(), "")  # quiet on success
            self.assertTrue(os.path.exists(self.out))
            self.assertEqual(ct2_to_ggml.main(["ct2_to_ggml.py"]), 2)
            os.remove(os.path.join(self.dir, "vocabulary.txt"))
            self.assertEqual(ct2_to_ggml.main(["ct2_to_ggml.py", self.dir, self.out + "2"]), 1)
        self.assertIn("vocabulary.txt", err.getvalue())


if __name__ == "__main__":
    unittest.main()
