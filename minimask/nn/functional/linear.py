"""linear: the affine map of a fully connected layer, y = input @ weight.T + bias.

Shapes as in PyTorch: input (*, in_features), weight (out_features, in_features),
bias (out_features,) or None -> y (*, out_features). It is composed from autograd ops
(matmul, transpose, add), whose backward gives d input = g @ weight,
d weight = g^T @ input (summed over the leading dims), d bias = g summed over all but the
last dim.
"""


def linear(input, weight, bias=None):
    """input @ weight.T + bias (see the module docstring for the shapes)."""
    if weight.ndim != 2:
        raise ValueError(
            f"linear: weight must be 2-d (out_features, in_features), got shape {weight.shape}"
        )
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {input.shape} must end in in_features = {weight.shape[1]} "
            f"(weight has shape {weight.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(
            f"linear: bias must have shape ({weight.shape[0]},), got shape {bias.shape}"
        )
    output = input @ weight.T
    return output if bias is None else output + bias
