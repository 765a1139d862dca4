"""``photocap export-graphs``: a model file's ONNX graphs, for the captioner that runs without torch."""

from __future__ import annotations

from pathlib import Path

import click

from photocap.cli._common import echo_json, json_option, require_torch, user_errors, warn


@click.command("export-graphs")
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cache", "to_cache", is_flag=True,
              help="Write them into the user cache folder instead of beside the model file.")
@json_option
def export_graphs(model_path: Path, to_cache: bool, as_json: bool) -> None:
    """Export MODEL_PATH's ONNX graphs (needs torch: photocap[torch]), so photocap captions with it on
    installs without torch. Each graph is checked against the torch network before it is kept.

    The graphs go beside the model (NAME.encoder.onnx, NAME.decoder-init.onnx, NAME.decoder-step.onnx
    and NAME.graphs.json, about 70 MB): copy them with the model file. Where torch is installed,
    photocap also exports them into its cache at first use.

    \b
    Examples:
      photocap export-graphs runs/f8k/best.safetensors
      photocap export-graphs my-model.safetensors --cache
    """
    require_torch("export-graphs")
    with user_errors():
        from photocap.captioner.graphs import Source, cache_dir, cache_name, write_graphs
        from photocap.decoding.modelfile import CheckpointError, model_stem, read_header
        from photocap.errors import ModelError

        try:
            source = Source.of(model_path, read_header(model_path))
        except CheckpointError as exc:
            raise ModelError(str(exc)) from exc
        if to_cache:
            folder, name = cache_dir(), cache_name(source)
        else:
            folder, name = model_path.parent, model_stem(model_path)
        if not as_json:
            warn(f"photocap: exporting {model_path} to ONNX ...")
        try:
            graphs = write_graphs(source, folder, name)
        except OSError as exc:
            raise ModelError(f"cannot write the graphs into {folder}: {exc}") from exc
        except RuntimeError as exc:  # ExportError: a graph that does not compute what torch does
            raise ModelError(f"exporting {model_path} failed: {exc}") from exc
    summary = {"model": str(model_path), "graphs": {k: str(v) for k, v in graphs.files.items()},
               "bytes": sum(v.stat().st_size for v in graphs.files.values())}
    if as_json:
        echo_json(summary)
    else:
        for path in graphs.files.values():
            click.echo(path)
