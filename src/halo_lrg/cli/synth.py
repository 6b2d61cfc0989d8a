"""``halo-lrg synth``: generate DR10-schema sweeps for trying, testing and benchmarking."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from halo_lrg.cli.options import CONTEXT_SETTINGS, get_config, override
from halo_lrg.survey.synth import DEFECT_KINDS


@click.command("synth", context_settings=CONTEXT_SETTINGS)
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--files", type=click.IntRange(min=1), default=None,
              help="Number of sweep files (5°x5° boxes stacked in Dec) [config synth.files].")
@click.option("--rows", type=click.IntRange(min=0), default=None,
              help="Objects per file (505 bytes each) [config synth.rows].")
@click.option("--seed", type=int, default=None, help="Random seed: same seed, same bytes.")
@click.option("--ra-start", type=float, default=None, help="RA of the first box's corner.")
@click.option("--dec-start", type=float, default=None, help="Dec of the first box's corner.")
@click.option("--defect", "defects", type=click.Choice(DEFECT_KINDS), multiple=True,
              help="Also write a file with this defect (repeatable), listed in the index.")
@click.pass_context
def synth_command(ctx: click.Context, outdir: Path, files: Optional[int], rows: Optional[int],
                  seed: Optional[int], ra_start: Optional[float], dec_start: Optional[float],
                  defects: tuple[str, ...]) -> None:
    """Write DR10-schema sweep files and OUTDIR/index.txt listing them.

    Real column names, types and order (130 columns, 505-byte rows), a big-endian binary
    table in HDU 1, bricknames consistent with RA/Dec, boxes named as the survey names them,
    RELEASE 10000 and 10002, and LRG densities of the published order (~600 per deg²).

    \b
    Example:
      halo-lrg synth sample/ --files 4 --rows 50000
      halo-lrg run --index sample/index.txt --output out/
    """
    from halo_lrg.survey.synth import generate_sample, write_defect

    cfg = override(get_config(ctx), synth={"files": files, "rows": rows, "seed": seed,
                                           "ra_start": ra_start, "dec_start": dec_start}).synth

    def report(summary) -> None:
        click.echo(f"{Path(summary.path).name}  {summary.rows:>10,} rows  "
                   f"{summary.bytes / 1e6:8.1f} MB  {len(summary.bricknames):4d} bricks  "
                   f"{summary.seconds:6.1f} s")

    summaries = generate_sample(outdir, cfg.files, cfg.rows, cfg.seed, cfg.ra_start,
                                cfg.dec_start, cfg.release_10002_fraction, cfg.object_density,
                                cfg.lrg_density, progress=report)
    index = outdir / "index.txt"
    for kind in defects:
        path = write_defect(outdir / f"defect-{kind}.fits", kind, seed=cfg.seed)
        with open(index, "a") as fh:
            fh.write(f"{path.resolve()}\n")
        click.echo(f"{path.name}  (defect: {kind})")
    total = sum(s.bytes for s in summaries)
    click.echo(f"{len(summaries)} sweep(s), {total / 1e6:.1f} MB; index: {index}")
