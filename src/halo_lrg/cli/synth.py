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
@click.option("--randoms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write this many randoms files (randoms-1-<k>.fits, 2500 per deg² "
              "over the sweeps' boxes) and OUTDIR/randoms.txt; a bright-star hole and an "
              "unobserved z stripe are then planted in randoms and sweeps alike.")
@click.pass_context
def synth_command(ctx: click.Context, outdir: Path, files: Optional[int], rows: Optional[int],
                  seed: Optional[int], ra_start: Optional[float], dec_start: Optional[float],
                  defects: tuple[str, ...], randoms: int) -> None:
    """Write DR10-schema sweep files and OUTDIR/index.txt listing them.

    Real column names, types and order (130 columns, 505-byte rows), a big-endian binary
    table in HDU 1, bricknames consistent with RA/Dec, boxes named as the survey names them,
    RELEASE 10000 and 10002, and LRG densities of the published order (~600 per deg²).

    With --randoms N, N randoms files cover the same boxes, and a mask is planted in both
    randoms and sweeps: a circular hole (MASKBITS bit 1, BRIGHT) and a Dec stripe without
    z-band data (NOBS_Z = 0). Its exact unmasked area is printed, to check `halo-lrg area`
    against. Without --randoms the sweeps are unmasked.

    \b
    Example:
      halo-lrg synth sample/ --files 4 --rows 50000
      halo-lrg run --index sample/index.txt --output out/
      halo-lrg synth sample/ --files 4 --rows 50000 --randoms 2
      halo-lrg area --randoms sample/randoms.txt --output area.csv
    """
    from halo_lrg.survey.synth import (
        PlantedMask,
        generate_randoms_sample,
        generate_sample,
        sample_boxes,
        write_defect,
    )

    cfg = override(get_config(ctx), synth={"files": files, "rows": rows, "seed": seed,
                                           "ra_start": ra_start, "dec_start": dec_start}).synth

    def report(summary) -> None:
        click.echo(f"{Path(summary.path).name}  {summary.rows:>10,} rows  "
                   f"{summary.bytes / 1e6:8.1f} MB  {len(summary.bricknames):4d} bricks  "
                   f"{summary.seconds:6.1f} s")

    try:
        boxes = sample_boxes(cfg.files, cfg.ra_start, cfg.dec_start)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    mask = PlantedMask.default_for(boxes[0]) if randoms else None
    summaries = generate_sample(outdir, cfg.files, cfg.rows, cfg.seed, cfg.ra_start,
                                cfg.dec_start, cfg.release_10002_fraction, cfg.object_density,
                                cfg.lrg_density, progress=report, mask=mask)
    index = outdir / "index.txt"
    for kind in defects:
        path = write_defect(outdir / f"defect-{kind}.fits", kind, seed=cfg.seed)
        with open(index, "a") as fh:
            fh.write(f"{path.resolve()}\n")
        click.echo(f"{path.name}  (defect: {kind})")
    total = sum(s.bytes for s in summaries)
    click.echo(f"{len(summaries)} sweep(s), {total / 1e6:.1f} MB; index: {index}")
    if randoms and mask is not None:
        def report_randoms(summary) -> None:
            click.echo(f"{Path(summary.path).name}  {summary.rows:>10,} randoms  "
                       f"{summary.bytes / 1e6:8.1f} MB  {summary.seconds:6.1f} s")

        made = generate_randoms_sample(outdir, boxes, randoms, cfg.seed, mask,
                                       progress=report_randoms)
        area = sum(s.area_deg2 for s in made) / len(made)
        click.echo(f"{len(made)} randoms file(s); index: {outdir / 'randoms.txt'}")
        click.echo(f"planted mask: hole of radius {mask.hole_radius:g}° at RA {mask.hole_ra:g}, "
                   f"Dec {mask.hole_dec:g} (MASKBITS bit 1); no z data at Dec "
                   f"{mask.stripe_dec_min:g} to {mask.stripe_dec_max:g}")
        click.echo(f"boxes {area:,.3f} deg², unmasked (mask bits 12290) "
                   f"{mask.unmasked_area_of_boxes(boxes):,.3f} deg²")
