#!/bin/sh
# make-ligands.sh - turn ligands.smi into ligands/<name>.pdbqt with Open Babel
# (Debian package openbabel): hydrogens added, one 3D conformer generated,
# Gasteiger charges, PDBQT with rotatable bonds. The committed files were made
# with it once; 3D generation is random, so a rerun gives other starting
# conformers and slightly different docking scores.
#   ./make-ligands.sh            (in this directory)
set -eu
cd "$(dirname "$0")"
command -v obabel >/dev/null || { echo "make-ligands.sh: obabel not found: apt-get install openbabel" >&2; exit 1; }
mkdir -p ligands
grep -v '^#' ligands.smi | while read -r smiles name; do
  [ -n "$smiles" ] || continue
  obabel -:"$smiles $name" -opdbqt --gen3d -h -O "ligands/$name.pdbqt" 2>&1 | grep -v '^1 molecule converted$' || true
  echo "ligands/$name.pdbqt"
done
