"""Inference from two Python threads at once (minimask/threading_layer.py). Numba's
workqueue threading layer aborts the whole process when two threads launch parallel
kernels at the same time; the CPU backend's entry points take turns under one lock.

The two threads run in a child process, so that an abort fails this test instead of
killing the test runner. Reference: the same model's detections computed first by one
thread alone; each thread's must be bitwise equal to them."""

import os
import subprocess
import sys
import textwrap

TWO_THREADS = textwrap.dedent(
    """
    import threading
    import numpy as np
    import minimask
    from minimask.models import MaskRCNN, MaskRCNNConfig

    minimask.manual_seed(0)
    model = MaskRCNN(MaskRCNNConfig.tiny(3)).eval()
    images = [minimask.rand(3, 64, 64), minimask.rand(3, 48, 64)]
    alone = [{k: v.numpy() for k, v in d.items()} for d in model(images)]
    results = {}

    def work(name):
        results[name] = [
            [{k: v.numpy() for k, v in d.items()} for d in model(images)] for _ in range(3)
        ]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for runs in results.values():
        for run in runs:
            for ours, reference in zip(run, alone):
                assert ours.keys() == reference.keys()
                for key in ours:
                    assert np.array_equal(ours[key], reference[key]), key
    print("threads:", len(results), "runs each:", len(results[0]))
    """
)


def test_two_threads_run_inference_with_one_model():
    done = subprocess.run(
        [sys.executable, "-c", TWO_THREADS], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "threads: 2 runs each: 3" in done.stdout


def test_setting_the_thread_count_first_still_starts_the_workqueue_layer():
    """The trainer sets the thread count (numba.set_num_threads, which starts numba's
    threads) before any kernel runs; the layer must already be minimask's choice then, not
    OpenMP's busy-waiting default. Reference: the layer threading_layer.py selects."""
    script = (
        "import numba, minimask\n"
        "from minimask.engine.distributed import set_threads\n"
        "set_threads(2)\n"
        "print(numba.threading_layer())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["workqueue"]
