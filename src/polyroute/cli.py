"""The ``polyroute`` command line. Subcommands live in ``COMMANDS``: adding one is one entry there.

Every pipeline step is a command too (``polyroute <step> --help``, see `polyroute.pipeline.commands`):
its options are its function's parameters, the ones its rule passes.

``polyroute inspect <store>``: dims, variables, attrs and, for a routing store, a per-language,
per-layer summary (tokens, normalised entropy H/ln E of the hard routing distribution, top experts with
their share of the language's expert choices). Long listings are truncated (see ``--help``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from polyroute.sizing.commands import calibrate_args, plan_args

# name -> (help, function that adds the arguments and returns the handler args -> exit code)
Handler = Callable[[argparse.Namespace], int]


def _evenly(n: int, keep: int) -> list[int]:
    """Up to ``keep`` indices spread evenly over range(n), always including the first and last."""
    if n <= keep:
        return list(range(n))
    if keep <= 1:
        return [0]
    return sorted({round(j * (n - 1) / (keep - 1)) for j in range(keep)})


def _table(rows: list[list[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)).rstrip()
            for row in rows]


def routing_summary(ds, max_languages: int = 12, max_layers: int = 6, top: int = 3,
                    languages: Sequence[str] | None = None) -> list[str]:
    """Lines of the per-language, per-layer summary of a routing store (count, tokens, top_k needed)."""
    count = np.asarray(ds["count"].values, dtype=np.float64)
    tokens = np.asarray(ds["tokens"].values, dtype=np.int64)
    names = [str(g) for g in ds["language"].values]
    layers = [int(v) for v in ds["layer"].values]
    E = count.shape[2]
    k = int(ds.attrs.get("top_k", 0)) or max(1, int(round(count[0, 0].sum() / max(tokens[0], 1))))
    if languages:
        unknown = [g for g in languages if g not in names]
        if unknown:
            raise ValueError(f"language(s) not in the store: {unknown}; it has {names[:8]}{' ...' if len(names) > 8 else ''}")
        gi = [names.index(g) for g in languages]
    else:
        gi = _evenly(len(names), max_languages)
    li = _evenly(len(layers), max_layers)
    rows = [["language", "tokens", "layer", "H/lnE", f"top {top} experts (share)"]]
    for g in gi:
        for n, l in enumerate(li):
            c = count[g, l]
            total = c.sum()
            if total > 0:
                p = c / total
                nz = p[p > 0]
                h = float(-(nz * np.log(nz)).sum() / np.log(E)) if E > 1 else 0.0
                order = np.argsort(-c, kind="stable")[:top]
                tops = " ".join(f"{int(i)}:{p[i]:.2f}" for i in order if c[i] > 0)
                hs = f"{h:.3f}"
            else:
                hs, tops = "-", "(no tokens)"
            rows.append([names[g] if n == 0 else "", f"{tokens[g]:,}" if n == 0 else "", str(layers[l]), hs, tops])
    lines = _table(rows, right=[False, True, True, True, False])
    notes = []
    if len(gi) < len(names):
        notes.append(f"{len(gi)} of {len(names)} languages")
    if len(li) < len(layers):
        notes.append(f"{len(li)} of {len(layers)} layers")
    if notes:
        lines.append(f"(showing {', '.join(notes)}; --languages / --max-languages / --max-layers show more)")
    lines.append(f"share = count / (k={k} x tokens); H/lnE = entropy of that distribution over E={E} experts / ln E")
    return lines


def describe(path: str, max_languages: int = 12, max_layers: int = 6, top: int = 3,
             languages: Sequence[str] | None = None, max_attrs_chars: int = 100) -> list[str]:
    """Readable summary lines of any Zarr result store at ``path``."""
    import xarray as xr

    from polyroute.errors import UserError
    from polyroute.routing.store import is_complete, verify_store

    p = Path(path)
    if not p.exists():
        raise ValueError(f"no store at {path}")
    with warnings.catch_warnings():  # stores without consolidated metadata open fine, just slower
        warnings.simplefilter("ignore")
        try:
            ds = xr.open_zarr(p)
        except Exception as e:  # noqa: BLE001 - any reason it is not a store is reported the same way
            raise ValueError(f"{path} is not a readable Zarr store ({type(e).__name__}: {e})") from e
    status = "complete" if is_complete(p) else "INCOMPLETE (no valid .complete marker: do not trust it)"
    if status == "complete":
        try:
            verify_store(p, ds)
        except UserError as e:
            status = f"DAMAGED ({e})"
    lines = [f"store: {p}  [{status}]", "dims: " + "  ".join(f"{d}={n:,}" for d, n in ds.sizes.items())]
    rows = [[name, "(" + ", ".join(map(str, v.dims)) + ")", str(v.dtype), _nbytes(v.nbytes)]
            for name, v in sorted(ds.data_vars.items())]
    if rows:
        lines.append("variables:")
        lines += ["  " + s for s in _table(rows, right=[False, False, False, True])]
    if ds.attrs:
        lines.append("attrs:")
        width = max(len(k) for k in ds.attrs)
        for key, val in ds.attrs.items():
            text = str(val)
            text = text if len(text) <= max_attrs_chars else text[: max_attrs_chars - 3] + "..."
            lines.append(f"  {key.ljust(width)}  {text}")
    if all(v in ds for v in ("count", "tokens")) and ds["count"].dims == ("language", "layer", "expert"):
        lines.append("routing per language and layer:")
        lines += ["  " + s for s in routing_summary(ds, max_languages, max_layers, top, languages)]
    return lines


def _nbytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _inspect_args(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("store", help="path to a .zarr result store (routing, stats, ...)")
    p.add_argument("--max-languages", type=int, default=12, help="languages shown, spread evenly (default 12)")
    p.add_argument("--max-layers", type=int, default=6, help="layers shown per language, spread evenly (default 6)")
    p.add_argument("--top", type=int, default=3, help="top experts listed per layer (default 3)")
    p.add_argument("--languages", nargs="+", help="show exactly these languages")

    def run(args: argparse.Namespace) -> int:
        for name in ("max_languages", "max_layers", "top"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        print("\n".join(describe(args.store, args.max_languages, args.max_layers, args.top, args.languages)))
        return 0

    return run


def _merge_args(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("base", help="the base model: hub id or local checkpoint directory")
    p.add_argument("adapter", help="an adapter directory (results/<run>/adapters/<method>/<target>) or its delta.safetensors")
    p.add_argument("out", help="directory for the full merged checkpoint (safetensors)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow code shipped with the base checkpoint (runs only for an architecture transformers "
                        "does not implement, after a warning naming the files)")
    p.add_argument("--any-base", action="store_true",
                   help="accept a base named differently from the one the delta was trained on (a local copy of "
                        "it); its tensor shapes must still match")

    def run(args: argparse.Namespace) -> int:
        from polyroute.train import merge
        from polyroute.train.artifacts import read_adapter

        delta, _, _ = read_adapter(args.adapter)  # marker, file and values checked before any model loads
        print(merge(args.base, delta, args.out, trust_remote_code=args.trust_remote_code, any_base=args.any_base))
        return 0

    return run


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Handler]]] = {
    "inspect": ("readable summary of any result store", _inspect_args),
    "merge": ("write base model + trained delta as a full Hugging Face checkpoint", _merge_args),
    "plan": ("per rule: jobs, work, GPU-hours and the Slurm request of each job (offline)", plan_args),
    "calibrate": ("time the configured model's GPU paths here: throughput figures for `plan`", calibrate_args),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of ``COMMANDS`` and per pipeline step.

    A step's options come from its function, whose module is imported only when `command` names it."""
    from polyroute import __version__
    from polyroute.pipeline.commands import STEPS, step_command

    parser = argparse.ArgumentParser(prog="polyroute", description="Language routing in Mixture-of-Experts LLMs.")
    parser.add_argument("--version", action="version", version=f"polyroute {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(handler=add_args(sp))
    for step in STEPS:
        sp = sub.add_parser(step, help=f"pipeline step {step} (--help lists its options)")
        if step == command:
            sp.set_defaults(handler=step_command(step)(sp))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``polyroute`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # `polyroute inspect x | head`
        return 0
    except (ValueError, OSError) as e:  # bad input or files: one line; anything else is a bug, traceback kept
        print(f"polyroute {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2


def one_line(error: BaseException) -> str:
    """An anticipated error as one line: an OS error names its file, multi-line messages are joined."""
    if isinstance(error, OSError) and error.filename is not None:
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
