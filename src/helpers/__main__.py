"""Heavy stages as commands, so that a large profile can fan out over a cluster and fill the same cache the
chapters read: `python -m helpers <stage> --profile P [--model M] [--layers 0,5,9] [--shard i/n]`.

Stages: `extract` (pooled activations of the moral sample; a shard computes every n-th chunk of texts and one
unsharded call afterwards merges them without loading the model), `corpus` (the SAE corpus's activations,
sharded and merged the same way; every later stage run with --shard reads it and never extracts it), `train-sae`
(one SAE per layer; a shard trains every n-th layer),
`surgery` (chapter 10's fine-tuned SAE per layer, training the pre-trained one first if missing), `generate`
(chapter 11's Flames generations, cached per condition; a shard takes every n-th steering layer, shard 0 also
the baseline) and `judge` (chapter 11's local judges, validated, scoring the cached generations of the same
conditions, cached per condition; it never generates: run `generate` with the same --layers/--shard/--seed first).

`python -m helpers fanout STAGE --profile P --shards N --engine ray|slurm` runs a stage's shards as Ray tasks and
then its merge, or writes them as a Slurm job array (`helpers.fanout`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from helpers.shards import Shard, parse_shard


def parse_layers(text: str | None, n_layers: int | None = None) -> list[int] | None:
    """`"0,5,9"` (or `"all"`, or None) as a layer list, checked against the model's depth if given; None means all."""
    if text is None or text == "all":
        return None
    try:
        layers = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise ValueError(f"--layers must be comma-separated block numbers or 'all', got {text!r}") from None
    bad = [layer for layer in layers if layer < 0 or (n_layers is not None and layer >= n_layers)]
    if bad:
        raise ValueError(f"--layers {bad} out of range 0..{'' if n_layers is None else n_layers - 1}")
    return layers


def _corpus(profile, extract: bool):
    """The profile's SAE corpus, extracted first if missing only when `extract` (a sharded stage only reads it:
    every shard would repeat the extraction)."""
    from helpers import sae
    from helpers.data import profile_moral_data

    return sae.split_corpus(profile, profile_moral_data(profile).cleaned, extract=extract)


def sae_corpus(profile, shard: Shard) -> None:
    """The SAE corpus's activations (what every SAE stage reads): a shard extracts every n-th chunk of its texts."""
    from helpers import sae
    from helpers.data import profile_moral_data

    done = sae.extract_corpus(profile, profile_moral_data(profile).cleaned, shard)
    print("SAE corpus complete" if done else f"SAE corpus shard {shard.index}/{shard.count} done; merge with one "
          f"unsharded `python -m helpers corpus --profile {profile.name}` once every shard has finished")


def extract(profile, models: Sequence[str], layers: str | None, shard: Shard) -> None:
    """Pooled activations of the profile's moral sample (what chapters 02–07 read) for each model."""
    from helpers import activations
    from helpers.data import profile_moral_data

    texts = activations.prompts(profile_moral_data(profile).actions, profile.template)
    for name in models:  # the model loads only if there is something to extract (extract checks the layer range)
        store = activations.ensure_activations(name, texts, profile, layers=parse_layers(layers), shard=shard)
        print(f"{name}: " + (f"complete, {store.directory}" if store else f"shard {shard.index}/{shard.count} done"))


def train_sae(profile, layers: str | None, shard: Shard, seed: int = 0, surgery: bool = False) -> None:
    """The profile's SAEs (chapter 08's cache), or with `surgery` their fine-tuned versions (chapter 10's):
    this shard's share of the layers."""
    from helpers import sae
    from helpers import surgery as surgery_module

    corpus = _corpus(profile, extract=shard.count == 1)
    chosen = parse_layers(layers, corpus.model.n_layers) or sae.sae_layers(profile, corpus.model.n_layers)
    settings = sae.settings_from_profile(profile, seed)
    for layer in shard.pick(chosen):
        if surgery:
            tuned, sets = surgery_module.ensure_surgery(corpus, layer, settings,
                                                        surgery_module.settings_from_profile(profile, seed),
                                                        profile.sae_identify_split)
            print(f"layer {layer}: surgery on {len(sets.tuned)} latents done")
        else:
            trained = sae.ensure_sae(corpus, layer, settings)
            print(f"layer {layer}: {trained.sae.cfg.d_sae} latents, {sae.sae_dir(corpus, layer, settings)}")


def generate(profile, layers: str | None, shard: Shard, seed: int) -> None:
    """Chapter 11's generations for this shard's steering layers (and the baseline on shard 0), into the cache."""
    from helpers import steering
    from helpers.data import flames

    prompts = flames.profile_prompts(profile)["prompt"].tolist()
    corpus = _corpus(profile, extract=shard.count == 1)
    chosen = parse_layers(layers, corpus.model.n_layers) or steering.steer_layers(profile, corpus.model.n_layers)
    texts, decoding = steering.flames_generation(corpus.model, profile, prompts, seed)
    conditions = steering.profile_conditions(corpus, profile, shard.pick(chosen), seed)
    for condition in conditions if shard.index == 0 else conditions[1:]:
        steering.ensure_generations(corpus.model, texts, decoding, condition)
        print(f"{condition.name}" + (f" at layer {condition.layer}" if condition.layer is not None else "")
              + f": {len(texts)} responses")


def judge(profile, layers: str | None, shard: Shard, seed: int) -> None:
    """Chapter 11's local scores of this shard's conditions (as `generate` splits them), from cached generations."""
    from helpers import judge as judge_module
    from helpers import steering
    from helpers.data import flames

    prompts = flames.profile_prompts(profile)
    corpus = _corpus(profile, extract=False)
    chosen = parse_layers(layers, corpus.model.n_layers) or steering.steer_layers(profile, corpus.model.n_layers)
    mine = shard.pick(chosen)
    generate_first = (f"run `python -m helpers generate --profile {profile.name}"
                      + (f" --layers {layers}" if layers else "") + (f" --shard {shard.index}/{shard.count}"
                                                                     if shard.count > 1 else "")
                      + (f" --seed {seed}" if seed else "") + "` first")
    missing = steering.missing_saes(corpus, profile, mine, seed)
    if missing:
        raise steering.MissingGenerations(f"no SAE or surgery SAE cached at layer(s) {missing}, so no generations "
                                          f"either: {generate_first}")
    texts, decoding = steering.flames_generation(corpus.model, profile, prompts["prompt"].tolist(), seed)
    conditions = steering.profile_conditions(corpus, profile, mine, seed)
    generated = []
    for condition in conditions if shard.index == 0 else conditions[1:]:
        try:
            generated.append((condition, steering.cached_generations(corpus.model, texts, decoding, condition)))
        except steering.MissingGenerations as err:
            raise steering.MissingGenerations(f"{err}: {generate_first}") from None
    judges = judge_module.flames_judges(profile, seed, language=judge_module.text_language(prompts["prompt"]))
    for condition, responses in generated:
        judge_module.ensure_scores(judges, prompts["prompt"].tolist(), prompts["dimension"].tolist(), responses)
        print(f"{condition.name}" + (f" at layer {condition.layer}" if condition.layer is not None else "")
              + f": scores of {len(responses)} responses in the cache")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run one stage (or, with `fanout`, a stage's shards on Ray or Slurm)."""
    from helpers.profiles import load_profile

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fanout"]:
        from helpers import fanout

        fanout.main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("extract", "corpus", "train-sae", "surgery", "generate", "judge"))
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--model", action="append", help="a model of the profile (repeatable; default: all)")
    parser.add_argument("--layers", help="comma-separated blocks, or 'all' (default: the stage's own)")
    parser.add_argument("--shard", default="0/1", help="i/n: this process's share of the work")
    parser.add_argument("--seed", type=int, default=0,
                        help="the chapters' seed parameter (surgery, generation, judging)")
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    shard = parse_shard(args.shard)
    if args.stage != "extract" and args.model:
        raise ValueError(f"--model applies to extract only; {args.stage} uses the profile's sae_model "
                         f"({profile.sae_model})")
    if args.stage == "extract":
        unknown = sorted(set(args.model or []) - set(profile.models))
        if unknown:
            raise ValueError(f"--model {unknown} not in profile {profile.name}'s models {profile.models}")
        extract(profile, args.model or profile.models, args.layers, shard)
    elif args.stage == "corpus":
        if args.layers:
            raise ValueError(f"--layers does not apply to corpus: it extracts the profile's sae_layers "
                             f"({profile.sae_layers})")
        sae_corpus(profile, shard)
    elif args.stage == "generate":
        generate(profile, args.layers, shard, args.seed)
    elif args.stage == "judge":
        judge(profile, args.layers, shard, args.seed)
    else:
        train_sae(profile, args.layers, shard, args.seed, surgery=args.stage == "surgery")


if __name__ == "__main__":
    sys.exit(main())
