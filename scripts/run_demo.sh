#!/usr/bin/env bash
# The main job on a fresh machine: install, data, train, test, evaluate, print the PSNR/SSIM table.
#
#   bash scripts/run_demo.sh                    # generated natural scenes if dataset/Sony is absent
#   EPOCHS=1001 PS=512 bash scripts/run_demo.sh # the seed's recipe (on the real data: days on a CPU)
#   PYTHON=python3.13 bash scripts/run_demo.sh  # another interpreter (3.7 to 3.13)
#
# Everything runs in the project virtualenv .venv/py<X.Y> (scripts/make_venv.sh: created once,
# reused while requirements.txt is unchanged), so it also works where pip may not touch the system
# Python. On the real SID data (dataset/Sony/{short,long}/*.ARW) the same steps run with the
# authors' list files shipped in the project root; a generated dataset (natural scenes: crops of
# photographs shipped by scikit-image and matplotlib, unprocessed to A7S II raw with ELD's
# calibrated noise; docs/data.md) carries its own lists in dataset/ (the official ones are never
# overwritten). It ends with eval.py's table of the three SSIM protocols, one montage PNG per test
# scene in result_Sony/montage/, the training plot result_Sony/training.png (loss and validation
# PSNR against epoch, from the training log result_Sony/train_log.txt; the terminal shows a
# progress bar and a line per validation)
# and, on generated data, scripts/quality_table.py's comparison of the input, non-local means and
# the network (result_Sony/quality_table.md). Extra arguments go to train_Sony.py.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-300}   # brief: enough for the generated scenes to beat the amplified input
PS=${PS:-64}            # packed patch size; the paper uses 512 (the generated raws are 512 x 768)
SAVE_FREQ=${SAVE_FREQ:-100}   # sample JPGs in result_Sony/<epoch>/ (the paper's 500 > the demo's 300)
VAL_EVERY=${VAL_EVERY:-50}  # validations per run: EPOCHS / VAL_EVERY points on the plot
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-50}  # a 93 MB checkpoint every 50 epochs, not every epoch

py=$(bash scripts/make_venv.sh "${PYTHON:-python3}")
echo "runtime: $("$py" -c 'import sys, tensorflow as tf; print("Python %s (%s), TensorFlow %s" % (sys.version.split()[0], sys.executable, tf.__version__))' 2>/dev/null)"
if [ ! -d dataset/Sony ]; then
  echo "dataset/Sony not found: generating a small SID-layout dataset of DNG raws (natural scenes)"
  "$py" scripts/make_dataset.py --data_dir=dataset          # its lists go to dataset/
elif [ ! -f dataset/Sony_train_list.txt ] && ls dataset/Sony/long/*.dng >/dev/null 2>&1; then
  "$py" scripts/make_lists.py --data_dir=dataset            # generated raws of an older demo
fi
lists=.                                                     # the authors' lists, for the real data
[ -f dataset/Sony_train_list.txt ] && lists=dataset
echo "lists: $lists/Sony_{train,test,val}_list.txt"
val=()                                                      # the real data: on if its files exist
[ "$lists" = dataset ] && val=(--val_list=dataset/Sony_val_list.txt)
mkdir -p result_Sony
"$py" train_Sony.py --epochs="$EPOCHS" --ps="$PS" --save_freq="$SAVE_FREQ" \
  --val_every="$VAL_EVERY" --checkpoint_every="$CHECKPOINT_EVERY" \
  --train_list="$lists/Sony_train_list.txt" --log_file=result_Sony/train_log.txt \
  ${val[@]+"${val[@]}"} "$@"
"$py" scripts/plot_training.py --log=result_Sony/train_log.txt --out=result_Sony/training.png
"$py" test_Sony.py --test_list="$lists/Sony_test_list.txt"
"$py" eval.py --ssim=all
"$py" scripts/montage.py --test_list="$lists/Sony_test_list.txt"
if [ "$lists" = dataset ]; then                             # seconds here; hours on the real set
  "$py" scripts/quality_table.py --test_list="$lists/Sony_test_list.txt"
fi
echo "done; to run the README's commands yourself: source scripts/activate.sh"
