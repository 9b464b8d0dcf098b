"""Reference solutions of lesson 13's exercises (lessons/exercises/lesson13.py checks them)."""

from numba import cuda

from minimask.cuda.array.launch import grid


@cuda.jit
def relu_kernel(x, out):
    """Thread t of T handles elements t, t + T, t + 2T, ...: any grid covers any n."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        out[i] = x[i] if x[i] > 0 else 0


def relu_forward(x):
    """relu of the 1-D float32 array x on the GPU. ``grid(n)`` returns (blocks, threads)
    for n work items and records the launch in minimask's counters."""
    x_on_device = cuda.to_device(x)
    out = cuda.device_array_like(x_on_device)
    relu_kernel[grid(x.size)](x_on_device, out)
    return out.copy_to_host()


def hand_counts():
    """One launch per elementwise operation, reduction or matmul; views launch nothing;
    reshaping a transposed view copies it (one elementwise copy); mean = sum, then divide."""
    return {
        "a + b": 1,
        "F.relu(a * b + a)": 3,  # multiply, add, relu
        "(a * b).sum()": 2,  # multiply, the full reduction
        "a.sum(dim=1).sum()": 2,  # two reductions
        "a @ b.T": 1,  # the matmul reads the transposed view through its strides
        "a[:, 1:].T": 0,  # two views
        "a.T.reshape(12)": 1,  # the transposed elements are not in row-major order: a copy
        "a.exp().mean()": 3,  # exp, the sum, the division by the count
    }


SMALL_BLOCK_LIMIT = 1 << 20
SMALL_GRANULE = 512
LARGE_GRANULE = 2 << 20


def size_class(nbytes):
    """nbytes rounded up to a multiple of 512 up to 1 MiB, of 2 MiB above."""
    granule = SMALL_GRANULE if nbytes <= SMALL_BLOCK_LIMIT else LARGE_GRANULE
    return -(-nbytes // granule) * granule


@cuda.jit
def scatter_add_kernel(index, values, out):
    """The thread that owns out[j] (a grid-stride loop over j) scans every i in increasing
    order and adds values[i] where index[i] == j: each addition is a float32 store, so the
    sum is rounded as np.add.at rounds it, and no other thread writes out[j]."""
    for j in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        for i in range(index.shape[0]):
            if index[i] == j:
                out[j] += values[i]
