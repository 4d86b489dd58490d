"""``python -m polyroute.demo {bundle,build,corpus,pretrain}``: rebuild the demo's data or models."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from polyroute.demo.bundle import build_bundle
from polyroute.demo.corpus import PACKAGES, build_corpus
from polyroute.demo.model import build_model
from polyroute.demo.pretrain import Settings, pretrain

DEMO_LANGUAGES = ["eng_Latn", "fra_Latn", "deu_Latn", "spa_Latn", "swh_Latn", "rus_Cyrl", "ell_Grek",
                  "arb_Arab", "hin_Deva", "zho_Hans"]


def main(argv: Sequence[str] | None = None) -> int:
    """Rebuild the demo data bundle, the tiny random model, the corpus or the pretrained model."""
    parser = argparse.ArgumentParser(prog="python -m polyroute.demo", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="write the data bundle from its sources")
    b.add_argument("--source", default="resources/demo/source")
    b.add_argument("--out", default="resources/demo")
    m = sub.add_parser("build", help="train the tokenizer and build the tiny random MoE model")
    m.add_argument("--out", default="resources/models/polyroute-tiny-qwen3moe")
    m.add_argument("--bundle", default="resources/demo")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--vocab-size", type=int, default=4096)
    m.add_argument("--dtype", default="bfloat16")
    c = sub.add_parser("corpus", help="extract the installed packages' catalogues into the corpus")
    c.add_argument("--out", default="resources/demo/corpus")
    c.add_argument("--languages", nargs="+", default=DEMO_LANGUAGES)
    c.add_argument("--packages", nargs="+", default=list(PACKAGES))
    c.add_argument("--heldout", type=int, default=100)
    c.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("pretrain", help="train the tokenizer and the demo MoE on the corpus")
    p.add_argument("--out", default="resources/models/polyroute-demo-qwen3moe")
    p.add_argument("--corpus", default="resources/demo/corpus")
    p.add_argument("--bundle", default="resources/demo")
    p.add_argument("--seed", type=int, default=Settings.seed)
    p.add_argument("--steps", type=int, default=Settings.steps)
    p.add_argument("--stop-after", type=int, default=None,
                   help="end after this many steps of the --steps schedule (0 = save the untrained model)")
    p.add_argument("--checkpoints", type=int, nargs="*", default=[],
                   help="also keep the weights after these steps (checkpoints/step-<n>/)")
    args = parser.parse_args(argv)
    if args.command == "bundle":
        files = build_bundle(args.source, args.out)
        print(f"wrote {len(files)} files under {args.out}")
    elif args.command == "build":
        print(f"wrote {build_model(args.out, args.bundle, seed=args.seed, vocab_size=args.vocab_size, dtype=args.dtype)}")
    elif args.command == "corpus":
        files = build_corpus(args.out, args.languages, packages=args.packages, heldout=args.heldout,
                             seed=args.seed)
        print(f"wrote {len(files)} files under {args.out}")
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        settings = Settings(seed=args.seed, steps=args.steps)
        out = pretrain(args.out, args.corpus, args.bundle, settings=settings, stop_after=args.stop_after,
                       checkpoints=args.checkpoints)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
