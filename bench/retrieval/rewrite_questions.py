"""The chat model rewrites each question of a retrieval set into likely identifiers (an
experiment of the semantic-retrieval issue; BENCHMARKS.md, "The chat model rewriting the
question").

  rewrite_questions.py ask PORT queries.jsonl rewrites.jsonl   # `perimeter serve --port PORT` running
  rewrite_questions.py augment queries.jsonl rewrites.jsonl out.jsonl [--identifiers-only]

`ask` is resumable (cases already in rewrites.jsonl are skipped). `augment` writes a queries
file for `perimeter bench retrieval`: each question followed by the model's names (only the
identifier-like ones with --identifiers-only).
"""
import json
import re
import sys
import time
import urllib.request

LANGUAGE = {"sharkdp/bat": "Rust", "tokio-rs/axum": "Rust", "vitejs/vite": "TypeScript",
            "gin-gonic/gin": "Go", "psf/black": "Python"}
PROMPT = ("A developer describes a bug in their {lang} project:\n\n{q}\n\nWhich functions, methods, types, "
          "variables, command-line flags and source files does the code that fixes it most likely contain? "
          "Answer with one line of likely identifiers and file names separated by spaces, nothing else.")


def ask(port, queries, out):
    try:
        done = {json.loads(l)["id"] for l in open(out)}
    except FileNotFoundError:
        done = set()
    with open(out, "a") as f:
        for line in open(queries):
            case = json.loads(line)
            if case["id"] in done:
                continue
            text = PROMPT.format(lang=LANGUAGE[case["repo"]], q=case["query"])
            body = {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 80}
            started = time.time()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            answer = json.load(urllib.request.urlopen(req, timeout=600))["choices"][0]["message"]["content"]
            case.update(rewrite=answer, rewrite_s=time.time() - started)
            f.write(json.dumps(case) + "\n")
            f.flush()
            print(case["id"], round(case["rewrite_s"], 1), answer.replace("\n", " ")[:120], flush=True)


def identifier_like(word):
    return bool("_" in word.strip("_") or re.search(r"[a-z][A-Z]", word) or re.search(r"\.\w{1,4}$", word)
                or word.startswith("--"))


def augment(queries, rewrites, out, identifiers_only):
    names = {json.loads(l)["id"]: json.loads(l)["rewrite"] for l in open(rewrites)}
    with open(out, "w") as f:
        for line in open(queries):
            case = json.loads(line)
            # Backticks and commas separate the model's names; `std::…` paths name the standard library.
            words = [w for w in re.sub(r"[`,]", " ", names[case["id"]]).split() if not w.startswith("std::")]
            if identifiers_only:
                words = [w for w in words if identifier_like(w)]
            case["query"] += "\n" + " ".join(words)
            f.write(json.dumps(case) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "ask":
        ask(*sys.argv[2:5])
    else:
        augment(*sys.argv[2:5], identifiers_only="--identifiers-only" in sys.argv)
