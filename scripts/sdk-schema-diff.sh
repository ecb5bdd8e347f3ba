#!/usr/bin/env bash
# What the models lack for a release of the official Python SDK.
#
#   scripts/sdk-schema-diff.sh            # newest retell-sdk on PyPI
#   scripts/sdk-schema-diff.sh 6.2.13     # a given version
#
# Installs `retell-sdk` into a temporary virtualenv (needs python3 with venv and
# access to PyPI), extracts the field paths and enums of its webhook models
# with scripts/sdk_paths.py (same formats as tests/fixtures/sdk/paths.tsv and
# enums.json), then:
#
#   1. prints a diff of the sorted path lists, the committed one against the
#      new one (`>` lines are paths the SDK added, `<` lines paths it dropped),
#      and the same for the enums;
#   2. runs `cargo test --test schema` against the new lists
#      (RETELL_SDK_PATHS / RETELL_SDK_ENUMS): its failures list every path and
#      enum value the models do not type. (Its third test checks the maximal
#      bodies in tests/fixtures/sdk/, which do not depend on the release.)
#
# To adopt a release once the models cover it, run with KEEP=1 and copy the two
# files it names into tests/fixtures/sdk/. Not run by CI (it needs the network).
#
# Environment: PYTHON (default python3), KEEP=1 keeps the temporary directory.
# Exit status: that of the test run (0 when the models cover the release).
set -euo pipefail

cd "$(dirname "$0")/.."
version="${1:-}"
python="${PYTHON:-python3}"

work="$(mktemp -d "${TMPDIR:-/tmp}/sdk-schema.XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then
  trap 'rm -rf "$work"' EXIT
fi

echo "==> installing retell-sdk${version:+==$version} into $work/venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "retell-sdk${version:+==$version}"
installed="$("$work/venv/bin/python" -m pip show retell-sdk | sed -n 's/^Version: //p')"
echo "retell-sdk $installed"

paths="$work/sdk-$installed-paths.tsv"
enums="$work/sdk-$installed-enums.json"
"$work/venv/bin/python" scripts/sdk_paths.py "$paths" "$enums"
echo "paths: $paths ($(grep -vc '^#' "$paths") fields)"
echo "enums: $enums"

echo
echo "==> paths: tests/fixtures/sdk/paths.tsv (<) against retell-sdk $installed (>)"
if diff <(sort tests/fixtures/sdk/paths.tsv) <(sort "$paths"); then
  echo "(same paths)"
fi

echo
echo "==> enums: tests/fixtures/sdk/enums.json (<) against retell-sdk $installed (>)"
# One `Name value` line per value, so the diff names the enum of each value.
enum_lines='import json, sys
for name, values in json.load(open(sys.argv[1])).items():
    for value in values:
        print(name, value)'
if diff <("$python" -c "$enum_lines" tests/fixtures/sdk/enums.json | sort) \
  <("$python" -c "$enum_lines" "$enums" | sort); then
  echo "(same enums)"
fi

echo
echo "==> cargo test --test schema against retell-sdk $installed"
status=0
RETELL_SDK_PATHS="$paths" RETELL_SDK_ENUMS="$enums" \
  cargo test --test schema || status=$?
if [[ $status == 0 ]]; then
  echo "the models type every path and enum value of retell-sdk $installed"
fi
if [[ "${KEEP:-0}" == 1 ]]; then
  echo "kept $work"
fi
exit "$status"
