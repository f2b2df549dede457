"""Writes the header of a zero-weight GGUF with the shapes and quantization types of a Qwen2.5-Coder
model, so its speed can be measured where the real file cannot be taken (the lent GPU machine takes
64 MiB per call). The tensor data is all zeros: the file is the header plus a sparse tail that
`truncate -s SIZE` makes. The kernels do not branch on weight values, but zero weights still ran
5-20% faster on a CPU (BENCHMARKS.md, "The check on a lent GPU, prepared"): an upper bound. The
answers are garbage.

    python3 shape_model.py --template qwen1.5b.gguf --shape same --out m.header   # that file, zeroed
    python3 shape_model.py --template qwen1.5b.gguf --shape 7b --out m.header     # 7B's shapes
Prints the size the header must be truncated up to. Needs the `gguf` package (PyPI).
"""

import argparse
import os

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as Q

# Qwen2.5-Coder-Instruct configurations (config.json on the model cards): hidden size, FFN size,
# layers, attention heads, KV heads, tied embeddings. The vocabulary is the template's.
SHAPES = {
    "3b": (2048, 11008, 36, 16, 2, True),
    "7b": (3584, 18944, 28, 28, 4, False),
    "14b": (5120, 13824, 48, 40, 8, False),
    "32b": (5120, 27648, 64, 40, 8, False),
}


def more_bits(i: int, n: int) -> bool:
    """llama.cpp's Q4_K_M rule for which layers' attn_v and ffn_down get Q6_K."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_tensors(hidden, ffn, layers, heads, kv_heads, tied, vocab):
    """(name, ggml shape [ne0, ne1], type) of a Qwen2 Q4_K_M file."""
    kv = hidden // heads * kv_heads
    out = [("token_embd.weight", [hidden, vocab], Q.Q4_K), ("output_norm.weight", [hidden], Q.F32)]
    if not tied:
        out.append(("output.weight", [hidden, vocab], Q.Q6_K))
    for i in range(layers):
        wide = Q.Q6_K if more_bits(i, layers) else Q.Q4_K
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", [hidden], Q.F32),
            (b + "attn_q.weight", [hidden, hidden], Q.Q4_K),
            (b + "attn_q.bias", [hidden], Q.F32),
            (b + "attn_k.weight", [hidden, kv], Q.Q4_K),
            (b + "attn_k.bias", [kv], Q.F32),
            (b + "attn_v.weight", [hidden, kv], wide),
            (b + "attn_v.bias", [kv], Q.F32),
            (b + "attn_output.weight", [hidden, hidden], Q.Q4_K),
            (b + "ffn_norm.weight", [hidden], Q.F32),
            (b + "ffn_gate.weight", [hidden, ffn], Q.Q4_K),
            (b + "ffn_up.weight", [hidden, ffn], Q.Q4_K),
            (b + "ffn_down.weight", [ffn, hidden], wide),
        ]
    return out


def nbytes(shape, qtype):
    block, size = GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    assert n % block == 0, (shape, qtype)
    return n // block * size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", required=True, help="a real Qwen2.5-Coder GGUF: tokenizer, template, metadata")
    ap.add_argument("--shape", required=True, choices=["same", *SHAPES])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    reader = gguf.GGUFReader(args.template)

    if args.shape == "same":
        with open(args.template, "rb") as f, open(args.out, "wb") as out:
            out.write(f.read(reader.data_offset))
        print(os.path.getsize(args.template))
        return

    hidden, ffn, layers, heads, kv_heads, tied = SHAPES[args.shape]
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    writer = gguf.GGUFWriter(args.out, "qwen2")
    overrides = {
        "general.name": f"zero-weight Qwen2.5-Coder-{args.shape.upper()} shape (speed only)",
        "general.size_label": args.shape.upper(),
        "qwen2.block_count": layers,
        "qwen2.embedding_length": hidden,
        "qwen2.feed_forward_length": ffn,
        "qwen2.attention.head_count": heads,
        "qwen2.attention.head_count_kv": kv_heads,
        "general.file_type": 15,  # MOSTLY_Q4_K_M
    }
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = overrides.get(key, field.contents())
        sub = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, field.types[0], sub)
    total = 0
    for name, shape, qtype in q4_k_m_tensors(hidden, ffn, layers, heads, kv_heads, tied, vocab):
        size = nbytes(shape, qtype)
        writer.add_tensor_info(name, list(reversed(shape)), np.float32, size, raw_dtype=qtype)
        total += gguf.GGUFWriter.ggml_pad(size, writer.data_alignment)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    header = os.path.getsize(args.out)
    padded = gguf.GGUFWriter.ggml_pad(header, writer.data_alignment)
    with open(args.out, "ab") as f:
        f.write(b"\0" * (padded - header))
    print(padded + total)


if __name__ == "__main__":
    main()
