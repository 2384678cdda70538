"""Building blocks: 1-bit quantizers and convs, the candidate ops, stems, cell plans, the evaluation network."""
