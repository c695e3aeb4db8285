#!/usr/bin/env bash
# Make `snakemake --profile slurm` find this checkout's profiles/slurm: link it into the user's
# Snakemake profile directory (${XDG_CONFIG_HOME:-~/.config}/snakemake/slurm), the place the
# snakemake-profiles convention uses. An existing profile of another origin is left alone.
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/.." && pwd)/profiles/slurm"
profiles="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
target="$profiles/slurm"
if [ -L "$target" ] && [ "$(readlink -f "$target")" = "$(readlink -f "$source_dir")" ]; then
    echo "setup: profile slurm already links to $source_dir"
elif [ -e "$target" ] || [ -L "$target" ]; then
    echo "setup: $target exists and is not this checkout's profile; left as it is." >&2
    echo "setup: use --profile $source_dir, or move $target away and rerun $0" >&2
else
    mkdir -p "$profiles"
    ln -s "$source_dir" "$target"
    echo "setup: linked $target -> $source_dir (snakemake --cores all --profile slurm)"
fi
