#!/usr/bin/env bash
# Builds the benchmark corpus for `wordlists bench`: about 40 MB of mixed
# text from Debian packages (fortunes: ordinary English prose, quotes and
# verse; wbritish: dictionary words), with one line in EVERY (12) a sentence of
# dictionary words carrying a library term, written plainly, in capitals,
# in leetspeak, dotted, with Cyrillic look-alikes or with zero-width spaces.
# Deterministic: the same packages give the same corpus.
#
#   wordlists/bench/make-corpus.sh /tmp/corpus.txt
#   cargo run --release -p wordlists -- bench --corpus /tmp/corpus.txt
set -euo pipefail
export LC_ALL=C
out=${1:-/tmp/corpus.txt}
# One line in EVERY is a planted term (default 12: far denser than real use).
every=${EVERY:-12}
cd "$(dirname "$0")/../.."
fortunes=/usr/share/games/fortunes
words=/usr/share/dict/british-english
for need in "$fortunes/fortunes" "$words"; do
  [ -e "$need" ] || { echo "missing $need: apt-get install fortunes wbritish" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run -q --release -p wordlists -- dump | grep -v '"rule":"context"' | sed 's/.*"term":"\([^"]*\)".*/\1/' > "$tmp/terms"
grep -v "'" "$words" > "$tmp/words"
# Fortune files are the ones without an extension (the .dat and .u8 files are indexes).
find "$fortunes" -maxdepth 1 -type f ! -name '*.*' | sort | xargs cat | grep -v '^%$' > "$tmp/prose"
awk -v seed=7 -v every="$every" '
  BEGIN { srand(seed) }
  FILENAME == ARGV[1] { term[nt++] = $0; next }
  FILENAME == ARGV[2] { word[nw++] = $0; next }
  {
    print
    if (FNR % every == 0) {
      t = term[int(rand() * nt)]
      how = int(rand() * 6)
      if (how == 1) t = toupper(t)
      else if (how == 2) { gsub(/a/, "4", t); gsub(/e/, "3", t); gsub(/o/, "0", t); gsub(/s/, "5", t) }
      else if (how == 3) { s = ""; for (i = 1; i <= length(t); i++) s = s substr(t, i, 1) (i < length(t) ? "." : ""); t = s }
      else if (how == 4) { gsub(/a/, "\xd0\xb0", t); gsub(/e/, "\xd0\xb5", t); gsub(/o/, "\xd0\xbe", t) }
      else if (how == 5) { s = ""; for (i = 1; i <= length(t); i++) s = s substr(t, i, 1) "\xe2\x80\x8b"; t = s }
      line = ""
      n = 3 + int(rand() * 8)
      for (i = 0; i < n; i++) line = line word[int(rand() * nw)] " "
      print line t " " word[int(rand() * nw)] "."
    }
  }
' "$tmp/terms" "$tmp/words" "$tmp/prose" > "$tmp/round"
: > "$out"
for _ in 1 2 3 4 5 6 7 8; do cat "$tmp/round" >> "$out"; done
echo "$out: $(wc -c < "$out") bytes, $(wc -l < "$out") lines" >&2
