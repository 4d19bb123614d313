#!/bin/sh
# dock.sh - one array task per ligand: task i docks line i of ligands.txt
# against receptor.pdbqt with AutoDock Vina and writes results/<ligand>.pdbqt
# (the poses) and results/<ligand>.tsv (ligand, best affinity, host, site,
# task). Deterministic: a fixed seed and one CPU give the same scores as
# running vina by hand with the same options.
# Knobs (qsub -v NAME=value): EXHAUSTIVENESS (search effort, default 2),
# SEED (default 42). Size: qsub -t 1-N for the first N ligands.
#$ -N dock
#$ -t 1-16
#$ -cwd
#$ -j y
set -eu
EXHAUSTIVENESS=${EXHAUSTIVENESS:-2}
SEED=${SEED:-42}
ligand=$(sed -n "${SGE_TASK_ID}p" ligands.txt)
if [ -z "$ligand" ]; then
  echo "dock: task $SGE_TASK_ID: ligands.txt has no line $SGE_TASK_ID" >&2
  exit 1
fi
# The node's site: MUSUBI_SITE on a provisioned node (musubi local up);
# otherwise nodes are named <site>-<node>, the site before the dash.
site=${MUSUBI_SITE:-${HOSTNAME%%-*}}
mkdir -p results
vina --receptor receptor.pdbqt --ligand "ligands/$ligand.pdbqt" --config box.conf \
  --exhaustiveness "$EXHAUSTIVENESS" --seed "$SEED" --cpu 1 --verbosity 0 \
  --out "results/$ligand.pdbqt" >/dev/null
score=$(awk '$1 == "REMARK" && $2 == "VINA" && $3 == "RESULT:" { print $4; exit }' "results/$ligand.pdbqt")
[ -n "$score" ] || { echo "dock: no VINA RESULT in results/$ligand.pdbqt" >&2; exit 1; }
# Written then renamed: a task that runs again replaces its line whole.
printf '%s\t%s\t%s\t%s\t%s\n' "$ligand" "$score" "$HOSTNAME" "$site" "$SGE_TASK_ID" > "results/$ligand.tsv.$$"
mv "results/$ligand.tsv.$$" "results/$ligand.tsv"
echo "dock: task $SGE_TASK_ID: $ligand $score kcal/mol on $HOSTNAME ($site), exhaustiveness $EXHAUSTIVENESS, seed $SEED"
