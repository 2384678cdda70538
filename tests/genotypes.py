"""Genotypes the tests share, in the DARTS string form."""

# DARTS (V2), the genotype of Liu et al.'s paper: a real, well-known cell to parse, train and profile.
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)

# DARTS_V2 with one op changed (node 2 of the normal cell takes a max pool of input 0, not a
# separable conv): another genotype, whose networks DARTS_V2's weights and Parents do not fit.
DARTS_V2_VARIANT = DARTS_V2.replace(
    "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
    "('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
)
