"""A packed model file's size beside the memory `cpnas profile` counts (`cpnas export`, `cpnas profile`)."""


def file_line(figures: dict) -> str:
    """A packed file's size beside the profile's memory figure."""
    return (
        f"File: {figures['file_bytes']:,} bytes = {figures['header_bytes']:,} header (names, shapes, manifest, "
        f"genotype) + {figures['data_bytes']:,} data. Profile memory: {figures['profile_memory_bits'] / 1e6:.4f} "
        f"Mbit = {figures['profile_bytes']:,.1f} bytes; data - profile = {figures['data_minus_profile_bytes']:,.1f} "
        f"bytes (bit tensors padded to whole bytes)"
    )
