#!/usr/bin/env bash
# Builds the README's marked snippets as a reader would paste them.
#
# A snippet is a ```toml block and a ```rust block, each preceded by the same
# marker line (blank lines may come between):
#
#   <!-- snippet: NAME -->        the rust block is src/main.rs
#   <!-- snippet: NAME PATH -->   the rust block is PATH (tests/handler.rs, …)
#
# For each snippet it makes a scratch crate in a temporary directory: a
# [package] header, then the toml block as it stands except for its
# `retell-webhooks = { git = "<repository>", … }` line, whose `git = …` becomes
# `path = "<this checkout>"` (the features stay), and the rust block at its
# path. Then `cargo check` on that file's target (`--build`: `cargo build`).
# Every scratch crate shares one target directory, so what one snippet compiled
# serves the next and the next run: $README_SNIPPETS_TARGET_DIR, else
# $CARGO_TARGET_DIR/readme-snippets, else target/readme-snippets here.
#
# Dependencies are resolved afresh, as for a new project: this needs crates.io
# (or CARGO_NET_OFFLINE=true with everything in cargo's cache).
#
# Usage: bash scripts/readme-snippets.sh [--build] [--keep] [--list] [NAME ...]
# Exit status: 0 every snippet builds; 1 one does not (each failure is named
# with its README lines); 2 the README's markers or blocks are not as above.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
readme="$root/README.md"

mode=check
keep=false
list=false
only=()
for arg in "$@"; do
  case "$arg" in
    --build) mode=build ;;
    --keep) keep=true ;;
    --list) list=true ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "error: unknown option $arg (see --help)" >&2
      exit 2
      ;;
    *) only+=("$arg") ;;
  esac
done

repo=$(sed -n 's/^repository = "\(.*\)"$/\1/p' "$root/Cargo.toml")
if [ -z "$repo" ]; then
  echo "error: Cargo.toml has no repository = \"…\" line" >&2
  exit 2
fi

# The repository URL as a sed pattern, the checkout's path as a replacement
# (with `|` as the delimiter).
repo_re=$(printf '%s' "$repo" | sed 's/[][\\.*^$|]/\\&/g')
root_sed=$(printf '%s' "$root" | sed 's/[\\&|]/\\&/g')

scratch=$(mktemp -d "${TMPDIR:-/tmp}/readme-snippets.XXXXXX")
blocks="$scratch/blocks"
mkdir "$blocks"

# One pass over the README: each marked block goes to $blocks/NAME.toml or
# $blocks/NAME.rs; $blocks/index lists `NAME KIND LINE PATH` in README order.
if ! awk -v out="$blocks" '
  function fail(line, msg) { printf "error: README.md:%d: %s\n", line, msg > "/dev/stderr"; failed = 1; exit 2 }
  {
    if (fence != "") {
      if (index($0, fence) == 1) { fence = ""; file = ""; next }
      if (file != "") print > file
      next
    }
    if ($0 ~ /^<!-- snippet:/) {
      if ($0 !~ /^<!-- snippet: [A-Za-z0-9_-]+( [^ ]+)? -->$/)
        fail(NR, "a marker is `<!-- snippet: NAME -->` or `<!-- snippet: NAME PATH -->`")
      split($0, word, " ")
      name = word[3]
      path = (word[4] == "-->") ? "-" : word[4]
      marker = NR
      next
    }
    if (match($0, /^(```+|~~~+)/)) {
      fence = substr($0, 1, RLENGTH)
      if (name == "") next
      info = substr($0, RLENGTH + 1)
      sub(/^[ \t]+/, "", info)
      split(info, lang, /[ ,]/)
      kind = lang[1]
      if (kind != "toml" && kind != "rust")
        fail(NR, "snippet `" name "` marks a `" kind "` block; only toml and rust blocks can be marked")
      ext = (kind == "toml") ? "toml" : "rs"
      if ((name, kind) in seen)
        fail(NR, "snippet `" name "` has a second " kind " block (the first is at line " seen[name, kind] ")")
      seen[name, kind] = NR
      print name, kind, NR, path > (out "/index")
      file = out "/" name "." ext
      printf "" > file
      name = ""
      next
    }
    if (name != "" && $0 !~ /^[ \t]*$/)
      fail(marker, "the marker of snippet `" name "` is not followed by a code block")
  }
  END {
    if (failed) exit 2
    if (fence != "") { printf "error: README.md: a code block is never closed\n" > "/dev/stderr"; exit 2 }
    if (name != "") { printf "error: README.md:%d: the marker of snippet `%s` is not followed by a code block\n", marker, name > "/dev/stderr"; exit 2 }
  }
' "$readme"; then
  rm -rf "$scratch"
  exit 2
fi

if [ ! -s "$blocks/index" ]; then
  echo "error: README.md marks no snippets (<!-- snippet: NAME -->)" >&2
  rm -rf "$scratch"
  exit 2
fi

# Snippet names in README order, each once.
mapfile -t names < <(awk '!seen[$1]++ { print $1 }' "$blocks/index")

# `line_of NAME KIND`: the README line of that block's fence.
line_of() { awk -v n="$1" -v k="$2" '$1 == n && $2 == k { print $3 }' "$blocks/index"; }

# `path_of NAME`: where the rust block goes (the markers' PATH, else src/main.rs).
path_of() {
  local paths
  paths=$(awk -v n="$1" '$1 == n && $4 != "-" { print $4 }' "$blocks/index" | sort -u)
  case "$(printf '%s' "$paths" | grep -c '^' || true)" in
    0) echo src/main.rs ;;
    1) echo "$paths" ;;
    *)
      echo "error: snippet \`$1\` is given two paths: $(echo $paths)" >&2
      return 2
      ;;
  esac
}

# Cargo's target selection for the rust block's file.
targets_of() {
  case "$1" in
    src/main.rs) echo --bins ;;
    tests/*/* | examples/*/* | benches/*/*) echo --all-targets ;;
    tests/*.rs) echo "--test $(basename "$1" .rs)" ;;
    examples/*.rs) echo "--example $(basename "$1" .rs)" ;;
    benches/*.rs) echo "--bench $(basename "$1" .rs)" ;;
    *) echo --all-targets ;;
  esac
}

errors=0
for name in "${names[@]}"; do
  for kind in toml rust; do
    if [ -z "$(line_of "$name" "$kind")" ]; then
      echo "error: README.md:$(awk -v n="$name" '$1 == n { print $3; exit }' "$blocks/index"): snippet \`$name\` has no $kind block" >&2
      errors=1
    fi
  done
  path=$(path_of "$name") || { errors=1; continue; }
  if [[ $path == /* || $path == *..* || $path != *.rs || $path == *[!A-Za-z0-9_./-]* ]]; then
    echo "error: snippet \`$name\`: \`$path\` is not a relative path to a .rs file" >&2
    errors=1
  fi
  if [ -f "$blocks/$name.toml" ]; then
    # The one line that names this crate, in the git form of the Installation section.
    count=$(grep -c '^retell-webhooks *=' "$blocks/$name.toml" || true)
    if [ "$count" != 1 ] || ! grep -q "^retell-webhooks = { git = \"$repo_re\"[,}]" "$blocks/$name.toml"; then
      echo "error: README.md:$(line_of "$name" toml): snippet \`$name\` must name the crate on one line, as \`retell-webhooks = { git = \"$repo\", features = [...] }\`" >&2
      errors=1
    fi
  fi
done
if [ "$errors" != 0 ]; then
  rm -rf "$scratch"
  exit 2
fi

for name in "${only[@]}"; do
  if ! printf '%s\n' "${names[@]}" | grep -qx -- "$name"; then
    echo "error: no snippet named $name (README.md has: ${names[*]})" >&2
    rm -rf "$scratch"
    exit 2
  fi
done
if [ "${#only[@]}" -gt 0 ]; then
  names=("${only[@]}")
fi

if $list; then
  for name in "${names[@]}"; do
    echo "$name: README.md:$(line_of "$name" toml) toml, README.md:$(line_of "$name" rust) rust as $(path_of "$name")"
  done
  rm -rf "$scratch"
  exit 0
fi

if [ -n "${README_SNIPPETS_TARGET_DIR:-}" ]; then
  target=$README_SNIPPETS_TARGET_DIR
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target=$CARGO_TARGET_DIR/readme-snippets
else
  target=$root/target/readme-snippets
fi
mkdir -p "$target"
target=$(cd "$target" && pwd)

failed=()
started=$SECONDS
for name in "${names[@]}"; do
  crate="$scratch/$name"
  path=$(path_of "$name")
  mkdir -p "$crate/$(dirname "$path")" "$crate/src"
  {
    printf '[package]\nname = "readme-snippet-%s"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n' "$name"
    printf '# Not part of any workspace around the temporary directory.\n[workspace]\n\n'
    sed "s|^retell-webhooks = { git = \"$repo_re\"|retell-webhooks = { path = \"$root_sed\"|" "$blocks/$name.toml"
  } >"$crate/Cargo.toml"
  cp "$blocks/$name.rs" "$crate/$path"
  [ -f "$crate/src/main.rs" ] || : >"$crate/src/lib.rs"
  # shellcheck disable=SC2207 # the target selection is words
  command=(cargo "$mode" $(targets_of "$path"))
  echo "==> snippet \`$name\` (README.md:$(line_of "$name" toml) toml, README.md:$(line_of "$name" rust) rust as $path): ${command[*]}"
  one=$SECONDS
  if (cd "$crate" && CARGO_TARGET_DIR="$target" "${command[@]}"); then
    echo "    snippet \`$name\` builds ($((SECONDS - one)) s)"
  else
    echo "error: README snippet \`$name\` does not build as pasted: the rust block at README.md:$(line_of "$name" rust) with the dependency block at README.md:$(line_of "$name" toml) (${command[*]} failed after $((SECONDS - one)) s; scratch crate kept: $crate)" >&2
    failed+=("$name")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "error: ${#failed[@]} of ${#names[@]} README snippets do not build: ${failed[*]} ($((SECONDS - started)) s)" >&2
  exit 1
fi
if $keep; then
  echo "scratch crates kept in $scratch"
else
  rm -rf "$scratch"
fi
echo "all ${#names[@]} README snippets build (${names[*]}; $((SECONDS - started)) s)"
