#!/bin/sh
# rank.sh - the summary job: runs once every dock task has finished
# (-hold_jid dock), ranks the ligands by best affinity (most negative first)
# into ranking.tsv and prints the top TOP (default 10) with the node and site
# that docked each. Exits 1 when a ligand of ligands.txt has no result.
#$ -N rank
#$ -hold_jid dock
#$ -cwd
#$ -j y
set -eu
TOP=${TOP:-10}
want=$(wc -l < ligands.txt)
tab=$(printf '\t')
: > ranking.tsv
missing=0
while read -r ligand; do
  if [ -s "results/$ligand.tsv" ]; then
    cat "results/$ligand.tsv" >> ranking.tsv
  else
    echo "rank: no result for $ligand" >&2
    missing=$((missing + 1))
  fi
done < ligands.txt
sort -t "$tab" -k2,2g -k1,1 ranking.tsv -o ranking.tsv
echo "top $TOP of $((want - missing)) ligands docked (affinity in kcal/mol, lower binds better)"
printf '%4s  %-12s %9s  %-10s %s\n' RANK LIGAND AFFINITY NODE SITE
head -n "$TOP" ranking.tsv | awk -F "$tab" '{ printf "%4d  %-12s %9s  %-10s %s\n", NR, $1, $2, $3, $4 }'
[ "$missing" -eq 0 ]
