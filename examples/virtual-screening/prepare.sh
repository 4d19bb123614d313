#!/bin/sh
# prepare.sh - lay out a screening run in a directory: the receptor, the
# search box, the first N ligands of the library and the two job scripts.
#   ./prepare.sh DIR [N]      (N: number of ligands, default: the whole library)
# Then, in DIR:
#   qsub -t 1-N dock.sh       (one array task per ligand)
#   qsub rank.sh              (waits for dock: -hold_jid dock)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: prepare.sh DIR [N]" >&2; exit 2; }
dir=$1
total=$(grep -cv '^#' "$here/ligands.smi")
n=${2:-$total}
case $n in '' | *[!0-9]*) echo "prepare.sh: N must be a number, got '$n'" >&2; exit 2 ;; esac
if [ "$n" -lt 1 ] || [ "$n" -gt "$total" ]; then
  echo "prepare.sh: N must be 1 to $total (the library's size), got $n" >&2; exit 2
fi
# The receptor: the Abl kinase domain that Debian's autodock-vina ships as test data.
receptor=/usr/share/doc/autodock-vina/test-data/protein.pdbqt.gz
[ -r "$receptor" ] || { echo "prepare.sh: $receptor missing: apt-get install --reinstall autodock-vina (and keep /usr/share/doc)" >&2; exit 1; }
mkdir -p "$dir/ligands" "$dir/results"
gzip -dc "$receptor" > "$dir/receptor.pdbqt"
cp "$here/box.conf" "$here/dock.sh" "$here/rank.sh" "$dir/"
# The first N of the library (smallest first), listed largest first: array
# tasks start in order, so the long dockings start early and the short ones
# fill the gaps at the end.
grep -v '^#' "$here/ligands.smi" | head -n "$n" | while read -r _ name; do
  cp "$here/ligands/$name.pdbqt" "$dir/ligands/"
  echo "$name"
done | tac > "$dir/ligands.txt"
echo "prepared $dir: receptor.pdbqt, $n ligands (ligands.txt); next: cd $dir && qsub -t 1-$n dock.sh && qsub rank.sh"
