"""How many terms each loss is averaged over: in one process, or summed over many.

Every Mask R-CNN loss is a mean over a batch-wide count: ``loss_objectness`` and
``loss_rpn_box_reg`` over the anchors the RPN sampled in all images, ``loss_classifier``
and ``loss_box_reg`` over the sampled RoIs, ``loss_mask`` over the positive RoIs' M x M
cells. In data-parallel training each process holds part of the batch. If each divided its
sum by its own count, as torchvision's and detectron2's DDP training do, a term would weigh
1 / (its process's count), and the averaged gradient would differ from the one a single
process computes on the whole batch whenever the counts differ. Dividing every process's
sum by the count summed over all processes instead makes the processes' losses, and
their gradients, add up to the single-process ones, up to the order of float additions:

    loss_p = (sum of the terms on process p) / (sum over processes of their counts)
    sum_p loss_p = (sum of all terms) / (count of all terms) = the one-process loss

``LossNormalizer.total(count)`` gives that denominator: the count itself in one process;
with ``reduce`` set (engine/distributed.py sets an MPI allreduce-sum), the sum over every
process. It is a collective: in each training step every process calls it the same number
of times in the same order (the RPN once, the RoI heads twice: RoIs, then positives, also
on a process that has no positive).
"""


class LossNormalizer:
    CALLS_PER_STEP = 3  # the RPN's sampled anchors, the RoI heads' RoIs and positives

    def __init__(self):
        self.reduce = None  # callable int -> int summing over processes, or None

    def skip_step(self):
        """Take part in a step's sums without a share of the batch (count 0 each time)."""
        for _ in range(self.CALLS_PER_STEP):
            self.total(0)

    def total(self, count):
        """The number of terms this loss is averaged over (module docstring)."""
        count = int(count)
        return count if self.reduce is None else int(self.reduce(count))
