"""What the commands that take a genotype read it from: a search run, a genotype file, a model."""

from pathlib import Path

from cpnas_cli.errors import UserError
from cpnas_cli.runs import RunDir
from cpnas_cli.space import genotype as genotypes


def source_genotype(source: Path) -> genotypes.Genotype:
    """The genotype of a search run directory, of a genotype file, or of a trained or packed model."""
    if source.suffix in (".safetensors", ".cpnas"):
        from cpnas_cli.engine.deploy.packing import read_packed
        from cpnas_cli.engine.train.model_file import read_model

        return (read_packed(source) if source.suffix == ".cpnas" else read_model(source))[0].genotype
    if source.is_dir():
        run = RunDir(source)
        if not run.genotype.is_file():
            raise UserError(
                f"{source} has no genotype.json (search not finished?)",
                f"finish it with: cpnas search --resume {source}",
            )
        return genotypes.load(run.genotype)
    return genotypes.load(source)
