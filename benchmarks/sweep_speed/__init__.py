"""Does the feature cache make a capacity sweep fast, and where does the rest of its time go?

In one run, on one machine (compare the paths measured here with each other, not with
figures from another day: a shared machine's timings are noisy):

1. writes scikit-learn's digits (1,797 images, 10 classes) as an image folder (one PNG per
   image, one sub-folder per class);
2. runs one workload through the real path, a ``capsweep -m`` subprocess (capsweep's
   sweeper, a journal-file study, MLflow on SQLite, all in a fresh folder), once with
   ``cache.enabled=false`` and once with ``cache.enabled=true`` (its own fresh folder:
   building the cache entries is included);
3. runs the same workload as a plain uncached Keras loop, KerasTuner's GridSearch, in its
   own process: the same models (capsweep's builders, optimizer and seeds), trained on
   capsweep's streamed ``tf.data`` batches and validated from its batched pipeline at its
   evaluation batch size, with no feature cache: tuner / cache-off measures the procedure,
   cache-off / cache-on the cache;
4. prints the walls and ratios, each capsweep run's time split from its MLflow runs, each
   path's accuracies or picks, and the lower bound (feature passes + training steps of the
   models capsweep trained with the cache on) with the bound ratio, tuner wall / bound;
5. (unless ``--skip-default``) times the default ``capsweep -m`` (small_resnet on the
   embedded digits, sweeps/capacity.yaml) in fresh folders: cold (pretraining included),
   then with the pretrained weights already cached, and with ``--default-cache-off`` also
   warm with the cache off.

Two workloads (``--workload``), each over the capacity grid (``--unfreeze`` × ``--depths``):

- ``grid`` (default): one run per configuration at capsweep's default learning rates;
- ``careful``: what a careful user runs — each configuration's backbone learning rate
  tuned over ``--rates`` and the result repeated ``--repeats`` times. capsweep tunes it
  as a nuisance hyperparameter (every rate once, the best confirmed on fresh seeds,
  nothing tried where nothing of the backbone trains); KerasTuner's GridSearch runs the
  grid × the rates with ``executions_per_trial`` = repeats. The report counts what each
  path trained and prints both picks: capsweep's recommendation and best by mean, and the
  tuner's best by mean over its executions.

The backbone has random weights with its BatchNorm statistics set from the training images,
saved as a weights file that every path loads as a user's would (``--weights null``: Keras'
random init, every trial at chance): ImageNet weights cannot be downloaded on the machines
this was written on. Speed does not depend on the weights' values; the accuracies only
compare the paths with each other.

Run from the repository's root (the package runs its workers the same way):

    uv run --extra benchmark python -m benchmarks.sweep_speed           # ~25 min on 2 cores
    uv run --extra benchmark python -m benchmarks.sweep_speed --epochs 3 --skip-default --keep
    uv run --extra benchmark python -m benchmarks.sweep_speed --workload careful --skip-default
    uv run --extra benchmark python -m benchmarks.sweep_speed --report-only /tmp/sweep-speed-x
"""
