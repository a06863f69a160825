#!/usr/bin/env bash
# Fetches the evaluation corpus (bench/eval/corpus.tsv) from Debian's archive: downloads
# each package named there (apt-get download, the version the archive serves today),
# extracts it, and copies the listed files to $STOA_EVAL_DIR/docs/<package>/<file>.
# Idempotent: a corpus already in place is kept. Prints the package versions it used
# into $STOA_EVAL_DIR/versions.txt (the figures in bench/results/eval.md name them).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${STOA_EVAL_DIR:-$HOME/.cache/stoa/eval}
list=bench/eval/corpus.tsv
want=$(grep -vc '^#' "$list")
if [ -f "$dir/docs/.complete" ] && [ "$(cat "$dir/docs/.complete")" = "$(sha256sum "$list" | cut -c1-64)" ]; then
  echo "== eval: corpus in place ($want files in $dir/docs)"
  exit 0
fi
echo "== eval: fetching the corpus ($want files from Debian's documentation packages)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt-get download runs as _apt where it can
rm -rf "$dir/docs.next"
mkdir -p "$dir/docs.next"
: >"$work/versions"
for pkg in $(grep -v '^#' "$list" | cut -f1 | sort -u); do
  (cd "$work" && apt-get download -qq "$pkg" >/dev/null)
  deb=$(ls "$work"/"${pkg}"_*.deb)
  dpkg-deb -x "$deb" "$work/$pkg"
  dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$work/versions"
done
grep -v '^#' "$list" | while IFS=$'\t' read -r pkg path; do
  mkdir -p "$dir/docs.next/$pkg"
  cp "$work/$pkg/$path" "$dir/docs.next/$pkg/$(basename "$path")"
done
got=$(find "$dir/docs.next" -type f | wc -l)
[ "$got" -eq "$want" ] || { echo "expected $want files, got $got" >&2; exit 1; }
sha256sum "$list" | cut -c1-64 >"$dir/docs.next/.complete"
rm -rf "$dir/docs"
mv "$dir/docs.next" "$dir/docs"
cp "$work/versions" "$dir/versions.txt"
echo "== eval: $got files in $dir/docs ($(tr '\n' ';' <"$dir/versions.txt"))"
